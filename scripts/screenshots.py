"""Open pages of the built book in headless Chromium; fail if their math or figures are missing.

The HTML is served locally (``http.server`` on a free port) exactly as a reader's browser gets it. For
each page Chromium runs the page's JavaScript (MathJax included) and dumps the resulting DOM, then
takes a screenshot. A page fails when

- it is marked as holding math but MathJax rendered none (no ``mjx-container``), or MathJax reports
  a TeX error (an ``mjx-merror`` node);
- it has fewer images than asked for, or an image whose file is missing or empty;
- its screenshot is blank (a single colour).

    python scripts/screenshots.py _build/html --out _build/screenshots \
        book/successor_measures.html:math:1 book/experiments.html::2

Each page argument is PATH[:math][:MIN_IMAGES]. Needs ``chromium-headless-shell`` or ``chromium``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
WINDOW = "1280,2400"
BUDGET_MS = "15000"  # virtual time for MathJax to typeset


@dataclass
class Page:
    path: str
    math: bool
    min_images: int


def parse_page(text: str) -> Page:
    path, _, rest = text.partition(":")
    flags = rest.split(":") if rest else []
    math = "math" in flags
    counts = [f for f in flags if f.isdigit()]
    unknown = [f for f in flags if f and f != "math" and not f.isdigit()]
    if unknown or not path.endswith(".html"):
        raise argparse.ArgumentTypeError(f"page {text!r}: expected PATH.html[:math][:MIN_IMAGES]")
    return Page(path, math, int(counts[0]) if counts else 0)


def find_browser() -> str | None:
    return next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def chromium(browser: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    flags += [f"--window-size={WINDOW}", f"--virtual-time-budget={BUDGET_MS}"]
    return subprocess.run(
        [browser, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def check_page(browser: str, base: str, root: Path, page: Page, out: Path) -> list[str]:
    """Problems found on one page (empty when it is fine); writes its screenshot under ``out``."""
    url = f"{base}/{page.path}"
    dom = chromium(browser, "--dump-dom", url).stdout
    problems = []
    if "<html" not in dom:
        return [f"{page.path}: the browser returned no page"]
    if page.math:
        rendered = dom.count("<mjx-container")
        if rendered == 0:
            problems.append(f"{page.path}: no math rendered by MathJax")
        if "<mjx-merror" in dom:
            problems.append(f"{page.path}: MathJax reports a TeX error")
    images = re.findall(r'<img[^>]+src="([^"]+)"', dom)
    local = [src for src in images if not src.startswith(("http:", "https:", "data:"))]
    if len(local) < page.min_images:
        problems.append(f"{page.path}: {len(local)} images, expected at least {page.min_images}")
    page_dir = (root / page.path).parent
    for src in local:
        path = unquote(urlparse(src).path)
        file = (root / path.lstrip("/") if path.startswith("/") else page_dir / path).resolve()
        if not file.is_file() or file.stat().st_size == 0:
            problems.append(f"{page.path}: image {src} is missing or empty")
    shot = out / (page.path.replace("/", "__").removesuffix(".html") + ".png")
    shot.unlink(missing_ok=True)  # never judge an old screenshot
    taken = chromium(browser, f"--screenshot={shot}", url)
    if taken.returncode != 0:
        problems.append(f"{page.path}: the browser exited with {taken.returncode}")
    if not shot.is_file():
        problems.append(f"{page.path}: no screenshot was taken")
    elif blank(shot):
        problems.append(f"{page.path}: the screenshot is blank")
    return problems


def blank(png: Path) -> bool:
    """Whether an image has a single colour (matplotlib reads PNG without extra packages)."""
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    return bool((pixels == pixels[0, 0]).all())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the built HTML folder (_build/html)")
    parser.add_argument("pages", type=parse_page, nargs="+")
    parser.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print(f"error: no headless browser found (tried {', '.join(BROWSERS)})", file=sys.stderr)
        return 2
    if not (args.html / "index.html").is_file():
        print(f"error: {args.html} holds no built book (run `make book` first)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    server, base = serve(args.html)
    try:
        problems = []
        for page in args.pages:
            found = check_page(browser, base, args.html, page, args.out)
            status = "ok" if not found else "FAILED"
            print(f"{page.path:48s} {status}")
            problems += found
    finally:
        server.shutdown()
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    print(f"screenshots in {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
