// Opens a page in Debian's headless Chromium and prints the page's #result
// once it is written: `node drive.mjs <url>`.
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  page.on("console", (message) => console.error(`page: ${message.text()}`));
  await page.goto(process.argv[2]);
  await page.waitForFunction(() => document.getElementById("result")?.textContent, null, {
    timeout: 30_000,
  });
  console.log(await page.textContent("#result"));
} finally {
  await browser.close();
}
