"""Login authentication (docs/behaviour.md, "Login authentication"): with auth.jwtSecret or
auth.jwtPublicKey set, login's serviceToken must be a JWT for that userID, else 1003 and nothing
changes (no login, no presence, no enter notice) and authFailures grows; a later good login on the
same connection works. Without a key a login needs no token, as in goWebSocket, and the node warns
once at start-up.

Tokens are made here: HS256 with hmac + hashlib, RS256 by the openssl command line (Python has no
JWT library in the test dependencies), with keys generated in a temporary directory."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import websockets

from harness import BIN, HOST, free_port
from imtest import NodeTestCase, uid, wait_until

SECRET = "integration-test-secret-32-bytes+"
APP = 101


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def signing_input(claims, alg, header=None):
    h = header if header is not None else {"alg": alg, "typ": "JWT"}
    return (b64url(json.dumps(h, separators=(",", ":")).encode()) + "." +
            b64url(json.dumps(claims, separators=(",", ":")).encode()))


def hs256(claims, secret=SECRET, header=None):
    key = secret if isinstance(secret, bytes) else secret.encode()
    si = signing_input(claims, "HS256", header)
    return si + "." + b64url(hmac.new(key, si.encode(), hashlib.sha256).digest())


def rs256(claims, key_path):
    si = signing_input(claims, "RS256")
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_path], input=si.encode(),
                         capture_output=True, check=True, timeout=30).stdout
    return si + "." + b64url(sig)


def new_rsa_key(directory, name):
    """Writes NAME.pem (private) and NAME.pub (public) and returns both paths."""
    priv, pub = os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".pub")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", priv], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                   capture_output=True, timeout=30)
    return priv, pub


class AuthCase(NodeTestCase):
    """Helpers shared by the classes below."""

    def failures(self):
        return self.node.state()["counters"]["authFailures"]

    def login(self, c, user, token=None, app=APP):
        data = {"userID": user, "appID": app}
        if token is not None:
            data["serviceToken"] = token
        return c.request("login", data)["response"]["code"]

    def online(self, user):
        status, _, body, _ = self.http.get("/user/online", {"userID": user, "appID": APP})
        self.assertEqual(status, 200, body)
        return body["data"]["online"]

    def listed(self, user):
        status, _, body, _ = self.http.get("/user/list", {"appID": APP})
        self.assertEqual(status, 200, body)
        return user in body["data"]["userList"]

    def assertRefusedThenAccepted(self, bad_tokens, good_token_for):
        """Each bad token on a connection of its own (app.loginRate allows a connection only a
        few attempts at once): 1003, the user neither online nor listed and the connection not
        logged in. Then on one connection two refusals and a good login: 200 and online. An
        observer in the room hears the enter of the good login only; authFailures grows by one
        per refusal and not for the good login."""
        observer_user = uid("obs")
        observer = self.client()
        self.assertEqual(self.login(observer, observer_user, good_token_for(observer_user)), 200)
        user = uid("a")
        before = self.failures()
        tokens = bad_tokens(user)
        for name, token in tokens:
            with self.subTest(token=name):
                c = self.client()
                self.assertEqual(self.login(c, user, token), 1003, name)
                self.assertFalse(self.online(user), "%s: refused user is online" % name)
                self.assertFalse(self.listed(user), "%s: refused user is listed" % name)
                # The connection is still not logged in: a heartbeat says so.
                self.assertEqual(c.request("heartbeat")["response"]["code"], 1000, name)
        c = self.client()
        for name, token in tokens[:2]:
            self.assertEqual(self.login(c, user, token), 1003, name)
        n = len(tokens) + 2
        wait_until(lambda: self.failures() >= before + n, 3,
                   what="authFailures to grow by %d" % n)
        self.assertEqual(self.failures(), before + n)
        # Room notices are sent from the main loop a moment after a login: give a refused one
        # the time it would have taken, then check nobody heard of it.
        time.sleep(0.3)
        self.assertFalse([m for m in observer.pushes("enter")
                          if m["response"]["data"]["from"] == user],
                         "a refused login was announced to the room")
        self.assertEqual(self.login(c, user, good_token_for(user)), 200)
        self.assertTrue(self.online(user))
        self.assertTrue(self.listed(user))
        observer.wait_for(lambda m: m.get("cmd") == "enter" and
                          m["response"]["data"]["from"] == user, 5, "enter of %s" % user)
        self.assertEqual(c.request("heartbeat")["response"]["code"], 200)
        self.assertEqual(self.failures(), before + n, "a good login counted as a failure")


class HS256Login(AuthCase):
    node_options = {"auth.jwtSecret": SECRET}

    def test_good_token_logs_in(self):
        user = uid("g")
        c = self.client()
        exp = int(time.time()) + 600
        self.assertEqual(self.login(c, user, hs256({"sub": user, "exp": exp, "appIds": [APP]})),
                         200)
        self.assertTrue(self.online(user))
        # A second device of the same user with its own token.
        d = self.client()
        self.assertEqual(self.login(d, user, hs256({"sub": user})), 200)

    def test_bad_tokens_refused_and_nothing_changes(self):
        now = int(time.time())

        def bad(user):
            return [
                ("missing", None),
                ("empty", ""),
                ("garbage", "garbage"),
                ("wrong secret", hs256({"sub": user}, secret="another secret of 32 bytes or more")),
                ("expired", hs256({"sub": user, "exp": now - 1})),
                ("not yet valid", hs256({"sub": user, "nbf": now + 3600})),
                ("exp a string", hs256({"sub": user, "exp": str(now + 600)})),
                ("other user", hs256({"sub": "someone-else"})),
                ("no sub", hs256({"name": user})),
                ("other app", hs256({"sub": user, "appIds": [APP + 1]})),
                ("alg none", signing_input({"sub": user}, "none", {"alg": "none"}) + "."),
                ("RS256 header", hs256({"sub": user}, header={"alg": "RS256", "typ": "JWT"})),
                ("trailing junk", hs256({"sub": user}) + "=="),
                ("too long", hs256({"sub": user, "pad": "x" * 5000})),
            ]

        self.assertRefusedThenAccepted(bad, lambda u: hs256({"sub": u}))

    def test_checks_before_the_token_keep_their_codes(self):
        """userID and appID are checked first (goWebSocket's order) and are not auth failures;
        an already logged-in connection gets 1009 whatever its token."""
        c = self.client()
        before = self.failures()
        self.assertEqual(self.login(c, "", "bad"), 1002)
        self.assertEqual(self.login(c, "x" * 20, "bad"), 1002)
        self.assertEqual(self.login(c, uid("t"), "bad", app=999), 1003)
        self.assertEqual(c.request("login", {"userID": uid("t"), "appID": APP,
                                             "serviceToken": 5})["response"]["code"], 1001)
        self.assertEqual(self.failures(), before)
        user = uid("t")
        c = self.client()
        self.assertEqual(self.login(c, user, hs256({"sub": user})), 200)
        self.assertEqual(self.login(c, user, "bad"), 1009)
        self.assertEqual(self.failures(), before)

    def test_seen_by_websockets_library(self):
        user = uid("lib")

        async def run():
            async with websockets.connect(self.node.ws_url, open_timeout=5, ping_interval=None,
                                          close_timeout=5) as ws:
                codes = []
                for seq, token in (("1", hs256({"sub": "mallory"})), ("2", hs256({"sub": user}))):
                    await ws.send(json.dumps({"seq": seq, "cmd": "login", "data": {
                        "userID": user, "appID": APP, "serviceToken": token}}))
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    self.assertEqual(reply["seq"], seq)
                    codes.append((reply["response"]["code"], reply["response"]["codeMsg"]))
                return codes

        self.assertEqual(asyncio.run(run()), [(1003, "Unauthorized"), (200, "Success")])

    def test_startup_log(self):
        err = self.node.stderr()
        self.assertEqual(err.count("login needs a serviceToken (JWT) signed with HS256"), 1, err)
        self.assertNotIn("NOT authenticated", err)
        self.assertNotIn(SECRET, err)


class PublicKeyLogin(AuthCase):
    """auth.jwtPublicKey with an RSA key written to a temporary directory."""

    @classmethod
    def setUpClass(cls):
        cls.keys = tempfile.mkdtemp(prefix="imgate-auth-")
        cls.priv, cls.pub = new_rsa_key(cls.keys, "node")
        cls.other_priv, _ = new_rsa_key(cls.keys, "other")
        cls.node_options = {"auth.jwtPublicKey": cls.pub}
        try:
            super().setUpClass()
        except Exception:
            shutil.rmtree(cls.keys, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.keys, ignore_errors=True)

    def test_rs256_refused_then_accepted(self):
        with open(self.pub, "rb") as f:
            pem = f.read()
        now = int(time.time())

        def bad(user):
            return [
                ("missing", None),
                ("other key", rs256({"sub": user}, self.other_priv)),
                ("expired", rs256({"sub": user, "exp": now - 10}, self.priv)),
                ("other user", rs256({"sub": user + "x"}, self.priv)),
                # Algorithm confusion: HS256 whose HMAC key is the public key's PEM text.
                ("HS256 with the PEM as secret", hs256({"sub": user}, secret=pem)),
                ("HS256", hs256({"sub": user})),
                ("alg none", signing_input({"sub": user}, "none", {"alg": "none"}) + "."),
            ]

        self.assertRefusedThenAccepted(
            bad, lambda u: rs256({"sub": u, "exp": now + 600, "appIds": [APP, 102]}, self.priv))

    def test_startup_log(self):
        err = self.node.stderr()
        self.assertEqual(err.count("login needs a serviceToken (JWT) signed with RS256, RS384, "
                                   "RS512 (auth.jwtPublicKey, RSA 2048 bits)"), 1, err)
        self.assertNotIn("NOT authenticated", err)


class NoKey(AuthCase):
    """No key: goWebSocket's behaviour, a login needs no token (one given is not looked at)."""

    def test_login_without_token(self):
        before = self.failures()
        for token in (None, "", "not a jwt", hs256({"sub": "someone-else"})):
            with self.subTest(token=token):
                user = uid("n")
                c = self.client()
                self.assertEqual(self.login(c, user, token), 200)
                self.assertTrue(self.online(user))
        self.assertEqual(self.failures(), before)

    def test_startup_warning_once(self):
        err = self.node.stderr()
        self.assertEqual(err.count("login is NOT authenticated"), 1, err)
        self.assertIn("any client may log in as any userID", err)
        self.assertNotIn("login needs a serviceToken", err)


class BadKeys(unittest.TestCase):
    """A key the node cannot use is a configuration error: exit 2 with one clear line, before
    it listens."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="imgate-auth-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def run_node(self, *flags):
        args = [BIN, "--app.bindAddress", HOST, "--app.httpPort", str(free_port()),
                "--app.webSocketPort", str(free_port()), "--app.logFile", ""] + list(flags)
        p = subprocess.run(args, cwd=self.dir, capture_output=True, timeout=30)
        return p.returncode, p.stderr.decode("utf-8", "replace")

    def test_refused(self):
        priv, pub = new_rsa_key(self.dir, "k")
        garbage = os.path.join(self.dir, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
        missing = os.path.join(self.dir, "missing.pem")
        cases = [
            (["--auth.jwtPublicKey", missing], [missing, "No such file"]),
            (["--auth.jwtPublicKey", priv], [priv, "private key"]),
            (["--auth.jwtPublicKey", garbage], [garbage, "not a PEM public key"]),
            (["--auth.jwtPublicKey", self.dir], ["not a regular file"]),
            (["--auth.jwtSecret", "too short"], ["auth.jwtSecret", "9 bytes", "at least 32"]),
            (["--auth.jwtSecret", "s" * 256], ["auth.jwtSecret", "longer than 255"]),
            (["--auth.jwtSecret", SECRET, "--auth.jwtPublicKey", priv], ["private key"]),
        ]
        for flags, mentions in cases:
            with self.subTest(flags=flags[:2] + [f[:40] for f in flags[2:]]):
                code, err = self.run_node(*flags)
                self.assertEqual(code, 2, err)
                for m in mentions:
                    self.assertIn(m, err)
                self.assertNotIn("listening", err)
                self.assertNotIn("ssssssss", err)
                self.assertNotIn("too short", err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)
        # The same key file, public this time, is accepted (the node then runs; stop it).
        env = dict(os.environ, IMGATE_AUTH_JWTPUBLICKEY=pub)
        p = subprocess.Popen([BIN, "--app.bindAddress", HOST, "--app.httpPort", str(free_port()),
                              "--app.webSocketPort", str(free_port()), "--app.logFile", ""],
                             cwd=self.dir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        try:
            lines = [p.stdout.readline().decode()]
            while lines[-1] and "listening" not in lines[-1]:   # until it takes SIGTERM
                lines.append(p.stdout.readline().decode())
            self.assertIn("login needs a serviceToken (JWT) signed with RS256", lines[0])
        finally:
            p.terminate()
            p.communicate(timeout=10)
        self.assertEqual(p.returncode, 0)


if __name__ == "__main__":
    unittest.main()
