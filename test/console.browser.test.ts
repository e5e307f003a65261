/**
 * The web console in a real browser (headless Chromium) against a test
 * cluster of five daemon processes: the picture, a partition and a heal made
 * from the page, the chat pane, and a kill. Screenshots of each step go to
 * test-output/console/.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ConsoleServer } from '../src/console/consoleServer.js';
import { LocalCluster } from '../src/tools/localCluster.js';
import { browserMissing, launchChromium, testOutputDir } from './support/browser.js';
import { fastDaemonArgs, ProcessCluster, waitUntil, type ScriptedClient } from './support/processCluster.js';

describe('web console in a browser', function () {
  this.timeout(120_000);
  let cluster: ProcessCluster;
  let consoleServer: ConsoleServer;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  const shots = testOutputDir('console');
  const shot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  before(async function () {
    const missing = browserMissing();
    if (missing && !process.env.CI) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    if (missing) throw new Error(missing);
    cluster = await ProcessCluster.create(5);
    await cluster.startAll();
    consoleServer = await ConsoleServer.start(new LocalCluster(cluster.config, cluster.paths, fastDaemonArgs), { port: 0 });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(consoleServer.url);
  });

  after(async () => {
    await browser?.close();
    await consoleServer?.close();
    await cluster?.destroy();
  });

  const linksIn = (state: string) => page.locator(`[data-link][data-state=${state}]`).count();

  it('shows five servers, every link up and one digest', async () => {
    await page.locator('[data-testid=digest][data-converged=true]').waitFor({ timeout: 10_000 });
    expect(await page.locator('[data-server][data-state=up]').count()).to.equal(5);
    await waitUntil(async () => (await linksIn('up')) === 20, 5000, 'all 20 link directions drawn as up');
    expect(await page.locator('[data-testid=partition]').textContent()).to.equal('no partition');
    await shot('1-healthy');
  });

  it('a partition {1,2} | {3,4,5} made from the page shows two groups and cut links within 2 s', async () => {
    await page.fill('[data-input=groups]', '1,2 3,4,5');
    await page.click('[data-action=partition]');
    await page.locator('[data-testid=partition]', { hasText: 'partition {1,2} | {3,4,5}' }).waitFor({ timeout: 2000 });
    await waitUntil(async () => (await linksIn('cut')) === 12, 2000, 'the 12 directions between the sides drawn as cut');
    expect(await linksIn('up')).to.equal(8);
    // The event strip follows its own poll of the page: it may show the partition a poll after the links do.
    await page.locator('[data-testid=events]', { hasText: 'partition {1,2} | {3,4,5}' }).waitFor({ timeout: 2000 });
    await shot('2-partitioned');
  });

  let onServer2: ScriptedClient;
  let onServer4: ScriptedClient;

  it('a message appended in the chat pane on server 1 reaches a client on server 2, not one on server 4', async () => {
    onServer2 = cluster.client(2);
    onServer4 = cluster.client(4);
    await onServer2.run('u bob', /user: bob/);
    await onServer2.run('j lobby', /--- lobby/);
    await onServer4.run('u dan', /user: dan/);
    await onServer4.run('j lobby', /--- lobby/);

    await page.locator('[data-testid=chat-connection][data-server="1"][data-connected=true]').waitFor({ timeout: 5000 });
    await page.fill('[data-input=chat-user]', 'ann');
    await page.click('[data-action=chat-user]');
    await page.locator('[data-testid=chat-user]', { hasText: 'you are ann' }).waitFor();
    await page.fill('[data-input=chat-group]', 'lobby');
    await page.click('[data-action=chat-join]');
    await page.locator('[data-testid=chat-group]', { hasText: 'lobby' }).waitFor();
    await page.fill('[data-input=chat-text]', 'hello from the page');
    await page.click('[data-action=chat-send]');
    await page.locator('[data-testid=messages] li', { hasText: 'hello from the page' }).waitFor({ timeout: 5000 });

    await onServer2.waitFor(/ann: hello from the page/);
    const from = onServer4.lines.length;
    await onServer4.run('p', /--- lobby/);
    expect(onServer4.lines.slice(from).join('\n')).not.to.contain('hello from the page');
    await shot('3-chat-in-partition');
  });

  it('heal from the page: one digest again, and the message reaches server 4', async () => {
    await page.click('[data-action=heal]');
    await page.locator('[data-testid=digest][data-converged=true]').waitFor({ timeout: 10_000 });
    await page.locator('[data-testid=partition]', { hasText: 'no partition' }).waitFor({ timeout: 5000 });
    await onServer4.waitFor(/ann: hello from the page/);
    await page.locator('[data-testid=events] [data-kind=converged]', { hasText: 'after the heal' }).waitFor({ timeout: 5000 });
    await shot('4-healed');
  });

  it('a kill from the page shows the server down and the chat pane moves to another server', async () => {
    await page.click('[data-action=kill-1]');
    await page.locator('[data-server="1"][data-state=down]').waitFor({ timeout: 5000 });
    await page.locator('[data-testid=chat-log] li.error', { hasText: 'lost server 1' }).waitFor({ timeout: 5000 });
    await page.locator('[data-testid=chat-connection][data-connected=true]:not([data-server="1"])').waitFor({ timeout: 5000 });
    await page.locator('[data-testid=chat-group]', { hasText: 'lobby' }).waitFor();
    // Still ann in lobby on the new server: the next message goes out from there.
    await page.fill('[data-input=chat-text]', 'after the kill');
    await page.click('[data-action=chat-send]');
    await onServer4.waitFor(/ann: after the kill/);
    await shot('5-killed');
  });

  it('the page raised no script error', () => {
    expect(problems).to.deep.equal([]);
  });
});
