"""Re-take the README's picture of the console: `make docs-screenshot` (writes docs/console.png).

The local runner as `make dev` starts it, on free ports, with its two demo subscriptions; Debian's
Chromium (driven by Playwright, as the browser tests do) connects the CRM one through the stand-in's
consent page, then the console is photographed at a desktop width.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from broker_local.output import configure_logging, quiet_metrics
from broker_local.runner import ROOT, Options, create_demo_subscriptions, free_port, running_broker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def take(path: Path, width: int = 1280) -> None:
    options = Options(
        port=free_port("127.0.0.1"),
        standin_ports=(free_port("127.0.0.1"), free_port("127.0.0.1")),
        demo=False,
    )
    with running_broker(options) as started, sync_playwright() as playwright:
        quiet_metrics()
        base_url = started["gateway"].base_url
        create_demo_subscriptions(base_url)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(base_url + "/")
            card = page.get_by_role("article", name="Demo Zoho CRM", exact=True)
            card.get_by_role("button", name="Authenticate", exact=True).click()
            page.get_by_label("Your account's data centre").select_option("eu")
            page.get_by_role("button", name="Accept").click()
            page.wait_for_load_state()
            page.get_by_role("link", name="Back to the console").click()
            page.wait_for_load_state()
            page.screenshot(path=str(path), full_page=True)
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m broker_local.screenshot", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png")
    arguments = parser.parse_args()
    configure_logging("WARNING")
    take(arguments.out)
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
