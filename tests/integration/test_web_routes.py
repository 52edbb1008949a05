"""The chat page's routes on the HTTP port: /, /home/index, /home/config, /web/<file>."""

import os
import unittest

from harness import Node
from imtest import Http

WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")


class WebRoutesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.node = Node(**{"app.webDir": WEB, "app.appIds": "101,102,205",
                           "app.webSocketUrl": "chat.example:9000"})
        cls.node.start()
        cls.http = Http(cls.node.http_port)

    @classmethod
    def tearDownClass(cls):
        cls.http.close()
        code = cls.node.stop()
        cls.node.cleanup()
        assert code == 0, code

    def test_root_redirects_to_the_page(self):
        status, headers, _, _ = self.http.get("/")
        self.assertEqual(status, 302)
        # relative, so that it stays under a reverse proxy's prefix
        self.assertEqual(headers["location"], "home/index")

    def test_index_is_the_page_with_safe_headers(self):
        status, headers, _, raw = self.http.get("/home/index", {"appID": "102"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        with open(os.path.join(WEB, "index.html"), "rb") as f:
            self.assertEqual(raw, f.read())
        self.assertIn("script-src 'self'", headers["content-security-policy"])
        self.assertEqual(headers["x-content-type-options"], "nosniff")

    def test_static_files_and_etag(self):
        for name, ctype in (("app.js", "application/javascript; charset=utf-8"),
                            ("style.css", "text/css; charset=utf-8")):
            status, headers, _, raw = self.http.get("/web/" + name)
            self.assertEqual((status, headers["content-type"]), (200, ctype), name)
            with open(os.path.join(WEB, name), "rb") as f:
                self.assertEqual(raw, f.read(), name)
            status, _, _, raw = self.http.get("/web/" + name,
                                              headers={"If-None-Match": headers["etag"]})
            self.assertEqual((status, raw), (304, b""), name)

    def test_no_way_out_of_the_web_folder(self):
        for path in ("/web/../README.md", "/web/%2e%2e/README.md", "/web/sub/app.js",
                     "/web/", "/web/nope.js"):
            status, _, body, _ = self.http.get(path)
            self.assertEqual(status, 404, path)
            self.assertEqual(body["code"], 404, path)

    def test_config_gives_rooms_and_urls(self):
        status, _, body, _ = self.http.get("/home/config")
        self.assertEqual(status, 200)
        self.assertEqual(body["data"], {"appIds": [101, 102, 205], "httpUrl": "",
                                        "webSocketUrl": "chat.example:9000"})

    def test_page_routes_are_get_and_head_only(self):
        for path in ("/home/index", "/web/app.js", "/home/config"):
            status, headers, body, _ = self.http.post(path, {"a": "b"})
            self.assertEqual((status, body["code"]), (405, 405), path)
            self.assertEqual(headers["allow"], "GET, HEAD", path)

    def test_head_gives_headers_without_body(self):
        status, headers, _, raw = self.http.request("GET", "/web/app.js")
        size = headers["content-length"]
        status, headers, _, raw = self.http.request("HEAD", "/web/app.js")
        self.assertEqual((status, raw, headers["content-length"]), (200, b"", size))
        status, _, _, raw = self.http.request("HEAD", "/web/missing.js")
        self.assertEqual((status, raw), (404, b""))
        # the connection is still in step: a GET after the HEADs gets its own answer
        status, _, body, _ = self.http.get("/home/config")
        self.assertEqual(status, 200)
        self.assertIn("appIds", body["data"])


class NoWebDirTest(unittest.TestCase):
    def test_missing_folder_gives_404_not_a_crash(self):
        with Node(**{"app.webDir": "/nonexistent/imgate-web"}) as node:
            http = Http(node.http_port)
            status, _, body, _ = http.get("/home/index")
            self.assertEqual((status, body["code"]), (404, 404))
            status, _, _, _ = http.get("/home/config")
            self.assertEqual(status, 200)
            http.close()


if __name__ == "__main__":
    unittest.main()
