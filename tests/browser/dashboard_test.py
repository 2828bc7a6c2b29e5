#!/usr/bin/python3
"""Real-browser tests of the pgbranch dashboard (web/), served by `pgbranch serve`.

Headless Chromium driven through WebDriver (Debian's chromium, chromium-driver and
python3-selenium 4). Run by tests/e2e/dashboard_e2e_test.cc, which makes the home, the project
"shop" (main with a small table), a write token and a running serve, and passes everything in
the environment (never in argv: the token is a secret):

  PGB_API_URL     serve's API and dashboard, "http://127.0.0.1:PORT"
  PGB_TOKEN       a token with scope write
  PGBRANCH_HOME   the home serve runs on
  PGBRANCH        the pgbranch binary (for the branch the CLI makes behind the page's back)
  PGB_SCREENSHOTS a directory for login.png, projects.png, project-tree.png,
                  create-dialog.png and phone.png (optional: no screenshots without it)

The scenarios run in order (their names are numbered) in one browser session, as a user
would: log in, create, reset, branch at a point in time, delete with a dependent, see a CLI
change arrive live, use a phone-sized window. Every wait is explicit (a condition polled
every 50 ms up to a deadline); a failure says what was awaited, the page's error banners,
dialog errors and the browser console's errors.
"""

import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

PROJECT = "shop"
WIDE = (1280, 800)
PHONE = (375, 812)
TIMEOUT = 60  # seconds, for anything that waits on a branch operation
UI_TIMEOUT = 20  # seconds, for what the page alone does (render, open a dialog)
POLL = 0.05


def env(name, required=True):
    value = os.environ.get(name, "")
    if required and not value:
        raise SystemExit(f"dashboard_test.py: ${name} is not set (see the docstring)")
    return value


def tid(testid):
    """A CSS selector for a data-testid (refs contain '/', so the value is quoted)."""
    return f'[data-testid="{testid}"]'


class DashboardTest(unittest.TestCase):
    driver = None

    @classmethod
    def setUpClass(cls):
        cls.base = env("PGB_API_URL").rstrip("/")
        cls.token = env("PGB_TOKEN")
        cls.home = env("PGBRANCH_HOME")
        cls.pgbranch = env("PGBRANCH")
        cls.shots = env("PGB_SCREENSHOTS", required=False)
        if cls.shots:
            os.makedirs(cls.shots, exist_ok=True)
        options = webdriver.ChromeOptions()
        for arg in (
            "--headless=new",
            "--no-sandbox",  # we run as root
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={WIDE[0]},{WIDE[1]}",
            "--force-device-scale-factor=1",
            "--lang=en-US",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        cls.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            cls.driver.set_page_load_timeout(30)
            cls.driver.get("about:blank")
            cls.viewport(WIDE)
        except BaseException:
            cls.driver.quit()  # tearDownClass does not run when setUpClass fails
            cls.driver = None
            raise
        cls.console = []  # every console entry read so far (get_log drains the buffer)

    @classmethod
    def tearDownClass(cls):
        if cls.driver is not None:
            cls.driver.quit()

    logged_in = False

    def setUp(self):
        self.d = type(self).driver
        if not self._testMethodName.startswith("test_01") and not type(self).logged_in:
            self.skipTest("not logged in (test_01 failed)")

    # ---------------------------------------------------------------- helpers

    def read_console(self):
        try:
            type(self).console.extend(self.d.get_log("browser"))
        except WebDriverException:
            pass
        return type(self).console

    def console_errors(self):
        """SEVERE console entries, less the expected 401 of the session check before login."""
        out = []
        for e in self.read_console():
            if e.get("level") != "SEVERE":
                continue
            msg = e.get("message", "")
            if "/api/v1/session" in msg and "401" in msg:
                continue
            out.append(msg)
        return out

    def texts(self, selector):
        out = []
        try:
            for el in self.d.find_elements(By.CSS_SELECTOR, selector):
                try:
                    out.append(el.text.strip())
                except StaleElementReferenceException:
                    pass
        except WebDriverException:
            pass
        return out

    def context(self):
        """What the page says about what went wrong: for failure messages."""
        parts = []
        try:
            parts.append(f"url: {self.d.current_url}")
        except WebDriverException as e:
            parts.append(f"url: unknown ({e.msg})")
        for label, selector in (
            ("error banners", tid("error-banner")),
            ("dialog errors", tid("dialog-error")),
            ("login errors", tid("login-error")),
            ("field errors", ".field-error"),
        ):
            found = [t for t in self.texts(selector) if t]
            if found:
                parts.append(f"{label}: " + " | ".join(found))
        errors = self.console_errors()
        if errors:
            parts.append("browser console errors:\n  " + "\n  ".join(errors[-20:]))
        body = self.texts("body")
        if body:
            parts.append("page text (start):\n  " + body[0][:1500].replace("\n", "\n  "))
        return "\n".join(parts)

    def wait_for(self, what, cond, timeout=TIMEOUT):
        """Polls cond() until it returns something truthy; fails saying `what` (a string, or a
        function returning one) was awaited."""
        deadline = time.monotonic() + timeout
        last_exc = None
        while True:
            try:
                value = cond()
                if value:
                    return value
            except (NoSuchElementException, StaleElementReferenceException) as e:
                last_exc = e
            if time.monotonic() > deadline:
                extra = f"\nlast exception: {last_exc.__class__.__name__}" if last_exc else ""
                if callable(what):  # a description that says how things stand now
                    what = what()
                self.fail(f"timed out after {timeout}s waiting for {what}{extra}\n{self.context()}")
            time.sleep(POLL)

    def el(self, testid, timeout=UI_TIMEOUT):
        """The displayed element with this data-testid."""
        def find():
            for e in self.d.find_elements(By.CSS_SELECTOR, tid(testid)):
                if e.is_displayed():
                    return e
            return None
        return self.wait_for(f"[data-testid={testid}] to be displayed", find, timeout)

    def present(self, testid):
        return len(self.d.find_elements(By.CSS_SELECTOR, tid(testid))) > 0

    def gone(self, testid, timeout=TIMEOUT):
        self.wait_for(f"[data-testid={testid}] to go away", lambda: not self.present(testid), timeout)

    def click(self, testid):
        e = self.el(testid)
        self.wait_for(f"[data-testid={testid}] to be enabled", e.is_enabled, 10)
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", e)
        e.click()
        return e

    def row_state(self, ref):
        rows = self.d.find_elements(By.CSS_SELECTOR, tid(f"row-{ref}"))
        if not rows:
            return None
        badges = rows[0].find_elements(By.CSS_SELECTOR, "td .badge")
        return badges[0].text.strip() if badges else ""

    def wait_running(self, ref):
        """The branch is in the table and in the tree, running in both."""
        self.wait_for(
            lambda: f"row-{ref} to show state running (it shows {self.row_state(ref)!r})",
            lambda: self.row_state(ref) == "running",
        )
        self.wait_for(
            f"node-branch-{ref} in the lineage tree with data-state=running",
            lambda: any(
                n.get_attribute("data-state") == "running"
                for n in self.d.find_elements(By.CSS_SELECTOR, tid(f"node-branch-{ref}"))
            ),
        )

    def assert_no_error_banner(self, doing):
        banners = [t for t in self.texts(tid("error-banner")) if t]
        self.assertEqual(banners, [], f"an error banner after {doing}\n{self.context()}")

    def wait_operation_succeeded(self, title, kind, target):
        """The operation the dialog started (its notice is titled `title`, "Reset shop/feature")
        succeeded: its notice says so, or, once the notice has gone (success notices leave
        after 6 s), serve's newest `kind` operation on `target` does. An error notice fails."""
        last = {"api": 0.0, "op": None}

        def check():
            errors = [t for t in self.texts(tid("error-banner")) if title in t]
            if errors:
                self.fail(f"{title} failed: {errors}\n{self.context()}")
            for b in self.d.find_elements(By.CSS_SELECTOR, ".banner-ok"):
                try:
                    if title in b.text and "succeeded" in b.text:
                        return True
                except StaleElementReferenceException:
                    pass
            if time.monotonic() - last["api"] > 0.5:
                last["api"] = time.monotonic()
                ops = [o for o in self.api("/api/v1/operations")
                       if o.get("kind") == kind and o.get("target") == target]
                ops.sort(key=lambda o: o.get("created_at") or "")
                last["op"] = ops[-1] if ops else None
                if last["op"] and last["op"].get("status") == "failed":
                    self.fail(f"{title}: the operation failed: {json.dumps(last['op'])}\n"
                              f"{self.context()}")
                if last["op"] and last["op"].get("status") == "succeeded":
                    return not self.present("error-banner")
            return False

        self.wait_for(lambda: f"{title!r} to succeed (serve's operation: {last['op']})", check)

    def api(self, path):
        req = urllib.request.Request(
            self.base + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def cli(self, *args, timeout=120):
        argv = [self.pgbranch, "--home", self.home, *args]
        r = subprocess.run(argv, env=os.environ.copy(), capture_output=True, text=True,
                           timeout=timeout)
        self.assertEqual(r.returncode, 0, f"{' '.join(args)} failed:\n{r.stdout}{r.stderr}")
        return r.stdout

    def shot(self, name):
        if not self.shots:
            return
        path = os.path.join(self.shots, name)
        self.assertTrue(self.d.save_screenshot(path), f"could not save {path}")

    def open_project(self):
        if f"#/projects/{PROJECT}" not in self.d.current_url or self.present("login-token"):
            self.d.get(f"{self.base}/#/projects/{PROJECT}")
        self.el("lineage-tree")
        self.el("branch-table")

    @classmethod
    def viewport(cls, size):
        """Sizes the window so that the page's viewport (innerWidth x innerHeight) is `size`:
        a headless window still counts some pixels for browser chrome it does not draw."""
        d = cls.driver
        d.set_window_size(*size)
        for _ in range(3):
            inner = d.execute_script("return [window.innerWidth, window.innerHeight]")
            if list(inner) == list(size):
                return
            outer = d.get_window_size()
            d.set_window_size(outer["width"] + size[0] - inner[0],
                              outer["height"] + size[1] - inner[1])
        inner = d.execute_script("return [window.innerWidth, window.innerHeight]")
        if abs(inner[0] - size[0]) > 1:
            raise AssertionError(f"cannot make a {size} viewport: it is {inner}")

    def dismiss_notices(self):
        """Closes the notices of finished operations (they sit over the page for 6 s)."""
        for b in self.d.find_elements(By.CSS_SELECTOR, ".banner-ok button"):
            try:
                b.click()
            except WebDriverException:
                pass
        self.wait_for("the finished operations' notices to go",
                      lambda: not self.d.find_elements(By.CSS_SELECTOR, ".banner-ok"), 10)

    def ensure_branch(self, name, parent="main"):
        """Makes the branch with the CLI if an earlier scenario that should have made it failed."""
        refs = {b["name"] for b in self.api(f"/api/v1/projects/{PROJECT}/branches?sizes=false")}
        if name not in refs:
            self.cli("branch", "create", f"{PROJECT}/{name}", "--parent", f"{PROJECT}/{parent}")

    def create_from_dialog(self, name):
        self.el("create-name").send_keys(name)
        self.click("dialog-confirm")
        self.wait_for(
            "the create dialog to close (the server accepted the request)",
            lambda: not self.present("dialog-create"),
        )

    # -------------------------------------------------------------- scenarios

    def test_01_login_with_enter_shows_projects(self):
        d = self.d
        d.get(self.base + "/")
        field = self.el("login-token")
        self.shot("login.png")
        # A wrong token is refused with a message, and the form stays.
        field.send_keys("pgbt_1_not-a-real-token")
        self.click("login-submit")
        err = self.el("login-error")
        self.assertIn("not accepted", err.text, self.context())
        field = self.el("login-token")
        field.clear()
        # Enter submits the form (keyboard only).
        field.send_keys(self.token, Keys.ENTER)
        self.el("project-list")
        type(self).logged_in = True
        link = self.el(f"project-link-{PROJECT}")
        self.assertIn(PROJECT, link.text)
        self.el("pool-usage-text")  # the pool's numbers have loaded too
        self.wait_for(
            "the live indicator to say live",
            lambda: self.el("live-indicator").get_attribute("data-state") == "live",
            20,
        )
        self.assertNotIn(self.token, d.page_source, "the token is still in the page")
        stored = d.execute_script(
            "return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),"
            " document.cookie])")
        self.assertNotIn(self.token, stored, "the token was kept in the browser's storage")
        self.shot("projects.png")

    def test_02_create_branch_from_dialog(self):
        self.click(f"project-link-{PROJECT}")
        self.el("lineage-tree")
        main = self.el(f"node-branch-{PROJECT}/main")
        self.assertEqual(main.get_attribute("data-state"), "running", self.context())
        self.assertEqual(self.row_state(f"{PROJECT}/main"), "running")

        self.click("new-branch")
        self.el("dialog-create")
        parent = self.el("create-parent")
        self.assertEqual(parent.get_attribute("value"), f"{PROJECT}/main")
        self.create_from_dialog("feature")
        self.wait_operation_succeeded(f"Create {PROJECT}/feature", "branch.create",
                                      f"{PROJECT}/feature")
        self.wait_running(f"{PROJECT}/feature")
        self.assertIn("from main", self.el(f"row-{PROJECT}/feature").text)
        self.assert_no_error_banner("creating feature")

    def test_03_reset_through_confirm_dialog(self):
        self.open_project()
        ref = f"{PROJECT}/feature"
        self.ensure_branch("feature")
        self.wait_running(ref)
        before = self.api(f"/api/v1/projects/{PROJECT}/branches/feature")
        self.click(f"action-reset-{ref}")
        dialog = self.el("dialog-reset")
        self.assertIn("everything written to it since is lost", dialog.text)
        self.assertEqual(self.el("reset-snapshot").get_attribute("value"), "")
        self.click("dialog-confirm")
        self.gone("dialog-reset")
        self.wait_operation_succeeded(f"Reset {ref}", "branch.reset", ref)
        self.wait_running(ref)
        self.assert_no_error_banner("the reset")
        after = self.api(f"/api/v1/projects/{PROJECT}/branches/feature")
        self.assertEqual(after["port"], before["port"], "a reset keeps the port")

    def test_04_point_in_time_branch_from_slider(self):
        self.open_project()
        self.click("new-branch")
        self.el("dialog-create")
        self.el("create-name").send_keys("pitr-point")
        self.click("create-source-pitr")
        slider = self.el("create-pitr")
        steps = int(slider.get_attribute("max"))
        self.assertGreaterEqual(steps, 1)
        self.assertEqual(int(slider.get_attribute("value")), steps, "the slider starts at now")
        newest = self.el("create-pitr-time").text
        self.shot("create-dialog.png")
        # Back to the middle of the window with the keyboard (every arrow is one step).
        back = max(1, steps // 2)
        slider.send_keys(*([Keys.ARROW_LEFT] * back))
        self.wait_for(
            f"the slider to move {back} steps back",
            lambda: int(self.el("create-pitr").get_attribute("value")) == steps - back,
            10,
        )
        target = self.el("create-pitr-time").text
        self.assertNotEqual(target, newest, "the time shown did not follow the slider")
        self.assertEqual(self.el("create-pitr").get_attribute("aria-valuetext"), target)
        window = self.api(f"/api/v1/projects/{PROJECT}/branches/main/wal")["window"]
        self.assertGreaterEqual(target, window["from_time"][:19] + "Z",
                                f"{target} is before the window {window}")
        self.click("dialog-confirm")
        self.wait_for(
            "the point-in-time create dialog to close",
            lambda: not self.present("dialog-create"),
        )
        ref = f"{PROJECT}/pitr-point"
        self.wait_operation_succeeded(f"Create {ref}", "branch.create", ref)
        self.wait_running(ref)
        self.assert_no_error_banner("the point-in-time branch")
        got = self.api(f"/api/v1/projects/{PROJECT}/branches/pitr-point")
        self.assertEqual(got.get("recovery_target"), target,
                         "recovered to another point than the slider's")

    def test_05_delete_names_dependents_then_deletes_recursively(self):
        self.open_project()
        self.ensure_branch("feature")
        feature = f"{PROJECT}/feature"
        child = f"{PROJECT}/feature-child"
        self.wait_running(feature)
        # The child from the row's own "Branch" action: the parent is preset.
        self.click(f"action-create-{feature}")
        self.el("dialog-create")
        self.assertEqual(self.el("create-parent").get_attribute("value"), feature)
        # With a TTL and labels: shown in the table, sent as the API's fields.
        self.el("create-ttl").send_keys("2d")
        self.el("create-labels").send_keys("pr=42, team=web")
        self.create_from_dialog("feature-child")
        self.wait_running(child)
        self.assert_no_error_banner("creating the child")
        got = self.api(f"/api/v1/projects/{PROJECT}/branches/feature-child")
        self.assertEqual(got["labels"], {"pr": "42", "team": "web"})
        self.assertIsNotNone(got["expires_at"])
        self.assertIn("pr=42", self.el(f"labels-{child}").text)
        # Two days, give or take the page's clock (it ticks every 30 s): "in 2d" or "in 1d 23h".
        self.wait_for(
            "the expiry in the table",
            lambda: re.match(r"in (2d|1d 23h)", self.el(f"expires-{child}").text),
            10,
        )
        # The lineage at its fullest: the screenshot of the tree and table.
        self.dismiss_notices()
        self.d.execute_script("window.scrollTo(0, 0)")
        self.shot("project-tree.png")

        self.click(f"action-delete-{feature}")
        dialog = self.el("dialog-delete")
        dependents = self.el("delete-dependents")
        self.assertIn(child, dependents.text, self.context())
        confirm = self.el("dialog-confirm")
        self.assertFalse(confirm.is_enabled(), "delete could be sent before accepting dependents")
        # The dependents are named before the confirm button (reading order).
        self.assertLess(dialog.text.index(child), dialog.text.index(confirm.text), dialog.text)
        self.click("delete-recursive")
        self.wait_for("the confirm button to be enabled", confirm.is_enabled, 5)
        self.assertIn("2 branches", confirm.text)
        confirm.click()
        self.gone("dialog-delete")
        self.gone(f"row-{child}")
        self.gone(f"row-{feature}")
        self.gone(f"node-branch-{child}")
        self.gone(f"node-branch-{feature}")
        self.wait_operation_succeeded(f"Delete {feature}", "branch.delete", feature)
        self.assert_no_error_banner("the recursive delete")
        names = {b["name"] for b in self.api(f"/api/v1/projects/{PROJECT}/branches?sizes=false")}
        self.assertNotIn("feature", names)
        self.assertNotIn("feature-child", names)

    def test_06_cli_branch_appears_without_reload(self):
        self.open_project()
        self.wait_for(
            "the live stream to be open",
            lambda: self.el("live-indicator").get_attribute("data-state") == "live",
            20,
        )
        self.d.execute_script("window.__pgbNoReload = 'still here'")
        self.cli("branch", "create", f"{PROJECT}/from-cli")
        ref = f"{PROJECT}/from-cli"
        self.wait_running(ref)
        self.assertEqual(
            self.d.execute_script("return window.__pgbNoReload"), "still here",
            "the page was reloaded; the branch should arrive through the event stream",
        )

    def test_07_escape_closes_dialog_and_returns_focus(self):
        self.open_project()
        opener = self.click("new-branch")
        self.el("dialog-create")
        self.wait_for(
            "focus in the name field",
            lambda: self.d.switch_to.active_element.get_attribute("data-testid") == "create-name",
            5,
        )
        self.d.switch_to.active_element.send_keys(Keys.ESCAPE)
        self.gone("dialog-create", 5)
        self.wait_for(
            "focus back on the New branch button",
            lambda: self.d.switch_to.active_element == opener,
            5,
        )
        # The same for a confirmation (Escape from its Cancel button).
        ref = f"{PROJECT}/from-cli"
        if self.present(f"action-stop-{ref}"):
            self.click(f"action-stop-{ref}")
            self.el("dialog-stop")
            self.d.switch_to.active_element.send_keys(Keys.ESCAPE)
            self.gone("dialog-stop", 5)
            self.assertEqual(self.row_state(ref), "running", "Escape must not stop the branch")

    def test_08_phone_width(self):
        self.open_project()
        try:
            self.viewport(PHONE)
            self.el("branch-table")
            self.dismiss_notices()
            self.d.execute_script("window.scrollTo(0, 0)")
            widths = "return [document.documentElement.scrollWidth, window.innerWidth]"
            self.wait_for(
                lambda: "no horizontal overflow of the document at 375 px "
                f"([scrollWidth, innerWidth] = {self.d.execute_script(widths)})",
                lambda: self.d.execute_script(
                    "return document.documentElement.scrollWidth <= window.innerWidth + 1"),
                5,
            )
            # Nothing outside the two scrolling panes reaches past the right edge either.
            wider = self.d.execute_script(
                "return [...document.querySelectorAll('body *')].filter(e => {"
                "  const r = e.getBoundingClientRect();"
                "  return r.width > 0 && r.right > window.innerWidth + 1 &&"
                "         !e.closest('.table-scroll, .tree-scroll'); })"
                ".slice(0, 5).map(e => e.tagName + '.' + e.className + ' right=' +"
                "  Math.round(e.getBoundingClientRect().right));")
            self.assertEqual(wider, [], "elements reach past the right edge at 375 px")
            self.shot("phone.png")

            # The table is still reachable: it scrolls into view, scrolls sideways inside its
            # wrapper, and a row's actions can then be seen and pressed.
            table = self.el("branch-table")
            self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", table)
            ref = f"{PROJECT}/main"
            self.assertTrue(self.el(f"select-{ref}").is_displayed())
            reach = self.d.execute_script(
                """
                const wrap = document.querySelector('.table-scroll');
                wrap.scrollLeft = wrap.scrollWidth;
                const b = document.querySelector(arguments[0]).getBoundingClientRect();
                return {left: b.left, right: b.right, width: window.innerWidth,
                        scrollable: wrap.scrollWidth > wrap.clientWidth};
                """,
                tid(f"action-snapshot-{ref}"),
            )
            self.assertTrue(
                reach["left"] >= 0 and reach["right"] <= reach["width"] + 1,
                f"the actions are not reachable at 375 px: {reach}",
            )
            self.click(f"action-snapshot-{ref}")
            self.el("dialog-snapshot")
            self.click("dialog-cancel")
            self.gone("dialog-snapshot", 5)
        finally:
            self.viewport(WIDE)

    def test_09_no_console_errors(self):
        errors = self.console_errors()
        self.assertEqual(errors, [], "the browser console has errors:\n" + "\n".join(errors))


class Tee:
    """The test runner's stream, also written to $PGB_BROWSER_LOG as it goes: the caller can
    still show what happened if it has to kill a run that hangs."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for s in self.streams:
            s.write(text)
            s.flush()

    def flush(self):
        for s in self.streams:
            s.flush()


if __name__ == "__main__":
    stream = sys.stderr
    log_path = os.environ.get("PGB_BROWSER_LOG", "")
    log = open(log_path, "a", encoding="utf-8") if log_path else None
    if log:
        stream = Tee(sys.stderr, log)
    runner = unittest.TextTestRunner(stream=stream, verbosity=2)
    result = unittest.main(testRunner=runner, exit=False).result
    if log:
        log.close()
    sys.exit(0 if result.wasSuccessful() else 1)
