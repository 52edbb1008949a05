"""Starts Debian's real nginx in front of imgate nodes, from deploy/nginx.conf as it is.

    with Nginx(ws_ports=[a.ws_port, b.ws_port], http_ports=[a.http_port, b.http_port]) as nginx:
        nginx.port          # the one loopback port clients use
        nginx.ws_url        # ws://127.0.0.1:<port>/acc

Only the lines the file marks "EDIT:" are rewritten: the `server` lines of the upstreams
imgate_ws and imgate_http (one per given port, with the parameters of the file's first server
line) and the `listen` line (127.0.0.1:<free port>). Everything else is the deployed file, so a
test through this proxy tests the file. IMGATE_NGINX_CONF names another file to run instead
(to try a variant, e.g. one without the Upgrade headers, and watch the tests fail).

nginx runs in the foreground (`-g 'daemon off;'`) with its own temp prefix (logs, pid, temp
files), is stopped by its master's PID with SIGQUIT (graceful), and its process group is
SIGKILLed if it has not exited in time. Process lifetime, the at-exit cleanup and the
parent-death signal are redisproc.py's helpers.
"""

import os
import re
import shutil
import signal
import socket
import tempfile
import time

from redisproc import HOST, forget, free_port, spawn, stop_process, track

NGINX = os.environ.get("IMGATE_NGINX") or "/usr/sbin/nginx"
CONF = os.environ.get("IMGATE_NGINX_CONF") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "nginx.conf")


def _replace_servers(text, upstream, ports):
    """The `server` lines of `upstream NAME { ... }` replaced by one line per port."""
    m = re.search(r"^\s*upstream\s+%s\s*\{(.*?)^\s*\}" % re.escape(upstream), text,
                  re.M | re.S)
    if not m:
        raise ValueError("%s: no upstream %s { ... }" % (CONF, upstream))
    block = m.group(1)
    servers = list(re.finditer(r"^(\s*)server\s+\S+?(\s[^;]*)?;[^\n]*\n", block, re.M))
    if not servers or not ports:
        raise ValueError("%s: upstream %s has no server lines to replace" % (CONF, upstream))
    indent, params = servers[0].group(1), servers[0].group(2) or ""
    lines = "".join("%sserver %s:%d%s;\n" % (indent, HOST, p, params) for p in ports)
    for s in reversed(servers[1:]):
        block = block[:s.start()] + block[s.end():]
    first = servers[0]
    block = block[:first.start()] + lines + block[first.end():]
    return text[:m.start(1)] + block + text[m.end(1):]


def render_conf(text, port, ws_ports, http_ports):
    """deploy/nginx.conf's text with the upstream servers and the listen port replaced."""
    text = _replace_servers(text, "imgate_ws", ws_ports)
    text = _replace_servers(text, "imgate_http", http_ports)
    text, n = re.subn(r"^(\s*)listen\s+[^;]+;", r"\g<1>listen %s:%d;" % (HOST, port), text,
                      flags=re.M)
    if n != 1:
        raise ValueError("%s: expected one listen line, found %d" % (CONF, n))
    return text


class Nginx:
    """One nginx master + workers on a free loopback port, proxying to the given node ports
    (ws_ports: their app.webSocketPort, http_ports: their app.httpPort)."""

    def __init__(self, ws_ports, http_ports, conf=None):
        self.ws_ports, self.http_ports = list(ws_ports), list(http_ports)
        self.conf_src = conf or CONF
        self.prefix = tempfile.mkdtemp(prefix="imgate-nginx-")
        # Started as root, nginx runs its workers as `nobody`; they must reach temp/.
        os.chmod(self.prefix, 0o755)
        os.mkdir(os.path.join(self.prefix, "logs"))
        os.mkdir(os.path.join(self.prefix, "temp"))
        self.conf_path = os.path.join(self.prefix, "nginx.conf")
        self.stderr_path = os.path.join(self.prefix, "stderr.log")
        self.error_log_path = os.path.join(self.prefix, "logs", "error.log")
        self.port = None
        self.proc = None

    @property
    def ws_url(self):
        return "ws://%s:%d/acc" % (HOST, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10):
        """Starts nginx and returns self once its master has bound the port (pid file written)
        and the port accepts. A port taken meanwhile is replaced by another, twice at most."""
        with open(self.conf_src) as f:
            template = f.read()
        for attempt in range(3):
            self.port = free_port()
            with open(self.conf_path, "w") as f:
                f.write(render_conf(template, self.port, self.ws_ports, self.http_ports))
            for old in (self.stderr_path, self.error_log_path):    # of a failed attempt
                if os.path.exists(old):
                    os.unlink(old)
            self.proc = spawn([NGINX, "-p", self.prefix + "/", "-c", self.conf_path,
                               "-g", "daemon off;"], self.stderr_path, self.prefix)
            track(self)
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError:
                busy = self.proc.poll() is not None and "Address already in use" in self.log()
                self.stop()
                if not busy or attempt == 2:
                    raise

    def _wait_ready(self, timeout):
        # The master writes its pid file after it has bound the listening socket, so a
        # connect after that reaches this nginx, not whoever else might hold the port.
        with open(self.conf_path) as f:
            m = re.search(r"^\s*pid\s+([^;]+);", f.read(), re.M)
        pid_file = os.path.join(self.prefix, m.group(1) if m else "logs/nginx.pid")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited (%s):\n%s" % (self.proc.returncode,
                                                                self.log()[-3000:]))
            try:
                with open(pid_file) as f:
                    ours = f.read().strip() == str(self.proc.pid)
                if ours:
                    with socket.create_connection((HOST, self.port), timeout=0.5):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("nginx did not listen on %d within %.0f s:\n%s" % (
            self.port, timeout, self.log()[-3000:]))

    def worker_pids(self):
        """PIDs of the master's children (its workers)."""
        if not self.running:
            return []
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15):
        """SIGQUIT (finish requests, then exit; open WebSockets are cut after the file's
        worker_shutdown_timeout of 10 s), SIGKILL to the group after `timeout`. Returns the
        master's exit status, None if it had to be killed."""
        if not self.proc:
            return None
        code = stop_process(self.proc, signal.SIGQUIT, timeout)
        self.proc = None
        forget(self)
        return code

    def log(self):
        """nginx's stderr (messages before the config is read) and its error.log."""
        out = []
        for p in (self.stderr_path, self.error_log_path):
            try:
                with open(p, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "".join(out)

    def access_log(self):
        try:
            with open(os.path.join(self.prefix, "logs", "access.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()
