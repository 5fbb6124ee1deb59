// A person signing in with a real browser: headless Chromium (Debian's
// /usr/bin/chromium, driven with puppeteer-core) opens the single sign-on
// or OAuth 2.0 address ratchet printed, signs in on the identity
// provider's login page as USER, consents, confirms Synapse's "continue to
// your application" page (single sign-on), and lands on ratchet's loopback
// page; or, given an account page's approval address (MSC4312), signs in
// there and approves; or, given Synapse's single sign-on page of
// user-interactive auth, confirms, signs in, and gets its "thank you".
//
//   node browser.mjs URL USER
//
// Prints the last page's address and text; exit 1 if it never got there.
import puppeteer from "puppeteer-core";

const [url, user] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // The OAuth 2.0 server of the tests serves HTTPS with a test CA's
  // certificate.
  acceptInsecureCerts: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run"],
});
const page = await browser.newPage();
page.setDefaultTimeout(30000);
// The addresses it went through, said when it fails.
const trail = [];
page.on("framenavigated", (frame) => { if (frame === page.mainFrame()) trail.push(frame.url()); });
let done = false;
try {
  await page.goto(url, { waitUntil: "load" });
  for (let step = 0; step < 10 && !done; step++) {
    const here = page.url();
    // Back at ratchet's loopback (single sign-on, or OAuth 2.0), or, on
    // the authorization server's account page, the reset approved.
    const text = await page.evaluate(() => document.body.innerText);
    if (/\/(sso|oauth)\?/.test(here) || text.includes("reset allowed") || text.includes("Now we know it")) {
      done = true;
      break;
    }
    const navigated = () => page.waitForNavigation({ waitUntil: "load" });
    if (await page.$("input[name=login]")) {
      await page.type("input[name=login]", user);
      if (await page.$("input[name=password]")) await page.type("input[name=password]", "any password");
      await Promise.all([navigated(), page.click("button[type=submit]")]);
    } else if (await page.$("a[href*='loginToken']")) {
      // Synapse asks before it sends the login to the application.
      await Promise.all([navigated(), page.click("a[href*='loginToken']")]);
    } else if (await page.$("a.primary-button")) {
      // Synapse's "confirm it's you" page of user-interactive auth.
      await Promise.all([navigated(), page.click("a.primary-button")]);
    } else if (await page.$("button[type=submit]")) {
      // The provider's consent page.
      await Promise.all([navigated(), page.click("button[type=submit]")]);
    } else {
      break;
    }
  }
  console.log(page.url());
  console.log(await page.evaluate(() => document.body.innerText));
  if (!done) console.log(trail.join("\n"));
} catch (e) {
  console.log(`browser: ${e.message} at ${page.url()}`);
  console.log(trail.join("\n"));
  console.log(await page.evaluate(() => document.body.innerText).catch(() => ""));
} finally {
  await browser.close();
}
process.exit(done ? 0 : 1);
