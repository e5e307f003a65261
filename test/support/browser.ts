/**
 * Headless Chromium for browser tests: Debian's `chromium` (installed by
 * .ci/run), driven with playwright-core; nothing downloads a browser.
 * CHROMIUM_PATH names another executable.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Why browser tests cannot run here, or undefined when they can. */
export function browserMissing(): string | undefined {
  return existsSync(chromiumPath) ? undefined : `no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH)`;
}

/** The flags this machine's closed network needs: no background connections, no sandbox as root. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Where a test keeps what it shows (screenshots): test-output/<name> in the repository. */
export function testOutputDir(name: string): string {
  const dir = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'test-output', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
