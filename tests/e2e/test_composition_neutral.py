"""Loading Levee and using it in one location changes nothing anywhere
else: the same requests to an nginx without the module and to one with it
(a levee_limit and a levee_heartbeat in one unrelated location) get the same
status, headers and body, for a wide set of nginx features; after a reload
of the one with the module too."""

from __future__ import annotations

import os

VARIES = {"date", "etag", "last-modified"}

SITE = """
    upstream app { server $app; }
    limit_req_zone $http_x_key zone=lr:1m rate=1r/m;
    gzip on; gzip_min_length 1; gzip_types text/plain;
    server {
        listen 127.0.0.1:$port;
        root $dir/www;
        index index.html;
        location /static/ { try_files $uri $uri.txt =404; add_header X-Static yes; }
        location /ep/ { error_page 404 = @not_found; }
        location @not_found { add_header X-Named yes always; return 200 "named fallback\\n"; }
        location = /moved { return 301 /static/a.txt; }
        location /rw/ { rewrite ^/rw/(.*)$ /static/$1 last; }
        location /rwr/ { rewrite ^/rwr/(.*)$ /static/$1 redirect; }
        location /private/ { auth_request /auth; proxy_pass http://app; }
        location = /auth { internal; if ($http_x_token = "good") { return 204; } return 403; }
        location /realip/ {
            set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP;
            add_header X-Client $remote_addr always;
            try_files /static/a.txt =404;
        }
        location /limited/ { limit_req zone=lr burst=1 nodelay; proxy_pass http://app; }
        location /if/ { if ($arg_x = "1") { return 418; } return 200 "not one\\n"; }
        location /ssi/ { ssi on; }
        location = /inc { return 200 "included"; }
        location /app/ {
            proxy_pass http://app/;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Custom custom;
        }
        location /internal-only/ { internal; }
        location /al/ { alias $dir/www/sub/; }
        location /headers/ { add_header X-A 1; add_header Cache-Control no-store; try_files /static/a.txt =404; }
        $levee_location
    }
"""

LEVEE_HTTP = """
    levee_sidecar unix:$sock;
    levee_limit_zone lz key=$arg_u rate=1r/m size=1m;
"""
LEVEE_LOCATION = "location = /levee { levee_limit lz; levee_heartbeat key=$arg_u; }"

FILES = {
    "index.html": "<h1>index</h1>\n",
    "static/a.txt": "0123456789abcdefghij\n" * 20,
    "ssi/page.html": '<p><!--# include virtual="/inc" --></p><!--# set var="v" value="x" --><!--# echo var="v" -->',
    "dir/index.html": "dir index\n",
    "sub/file.txt": "aliased\n",
}

# (method, path, request headers, the status both must answer)
REQUESTS = [
    ("GET", "/", {}, 200),
    ("GET", "/static/a.txt", {}, 200),
    ("GET", "/static/a", {}, 200),
    ("GET", "/static/none", {}, 404),
    ("GET", "/static/a.txt", {"Accept-Encoding": "gzip"}, 200),
    ("GET", "/static/a.txt", {"Range": "bytes=2-9"}, 206),
    ("GET", "/static/a.txt", {"Range": "bytes=900-"}, 416),
    ("HEAD", "/static/a.txt", {}, 200),
    ("POST", "/static/a.txt", {}, 405),
    ("GET", "/ep/missing", {}, 200),
    ("GET", "/moved", {}, 301),
    ("GET", "/rw/a.txt", {}, 200),
    ("GET", "/rwr/a.txt", {}, 302),
    ("GET", "/private/x", {"X-Token": "good"}, 200),
    ("GET", "/private/x", {"X-Token": "bad"}, 403),
    ("GET", "/realip/", {"X-Real-IP": "203.0.113.9"}, 200),
    ("GET", "/limited/", {"X-Key": "round-{round}"}, 200),
    ("GET", "/limited/", {"X-Key": "round-{round}"}, 200),
    ("GET", "/limited/", {"X-Key": "round-{round}"}, 503),
    ("GET", "/if/?x=1", {}, 418),
    ("GET", "/if/?x=2", {}, 200),
    ("GET", "/ssi/page.html", {}, 200),
    ("GET", "/app/path?q=1", {"X-Custom": "client"}, 200),
    ("GET", "/internal-only/x", {}, 404),
    ("GET", "/al/file.txt", {}, 200),
    ("GET", "/dir", {}, 301),
    ("GET", "/dir/", {}, 200),
    ("GET", "/headers/", {}, 200),
]


def site(make_nginx, app, module: bool, sock: str = ""):
    body = (LEVEE_HTTP if module else "") + SITE
    ngx = make_nginx(body, module_path="levee" if module else None, start=False,
                     app=app.addr, sock=sock, levee_location=LEVEE_LOCATION if module else "")
    for name, text in FILES.items():
        os.makedirs(os.path.dirname(f"{ngx.dir}/www/{name}"), exist_ok=True)
        with open(f"{ngx.dir}/www/{name}", "w") as f:
            f.write(text)
    return ngx.start()


def answer(ngx, method, path, headers):
    status, hdrs, body = ngx.request(method, path, headers=headers)
    port = f":{ngx.port}".encode()
    return (status,
            [(k.lower(), v.replace(port.decode(), ":PORT")) for k, v in hdrs.items() if k.lower() not in VARIES],
            body.replace(port, b":PORT"))


def differences(plain, loaded, round: int) -> list:
    """Requests answered differently, or not as expected. limit_req keys
    change with ``round``: its zone keeps its state through a reload."""
    out = []
    for method, path, headers, status in REQUESTS:
        headers = {k: v.format(round=round) for k, v in headers.items()}
        a, b = answer(plain, method, path, headers), answer(loaded, method, path, headers)
        if a != b or a[0] != status:
            out.append((method, path, headers, a, b))
    return out


def test_one_levee_location_changes_nothing_elsewhere(make_nginx, make_upstream, make_leveed):
    app = make_upstream("app")
    leveed = make_leveed()
    plain = site(make_nginx, app, module=False)
    loaded = site(make_nginx, app, module=True, sock=leveed.socket_path)
    assert differences(plain, loaded, round=1) == []
    loaded.reload()
    assert differences(plain, loaded, round=2) == []

    # Levee is at work in its own location
    assert [loaded.get("/levee?u=a")[0] for _ in range(2)] == [204, 429]
