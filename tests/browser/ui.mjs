// The web UI in real headless Chromium: sign in through the form, open every page, compare the
// figures each page shows with the JSON API's answer for the same thing, switch language, check
// that Vietnamese text renders with real glyphs, download a CSV through the page's link, sign out.
// Screenshots of every page at desktop (1280x900) and phone (390x844) size go to
// $HATANG_ARTIFACTS. Run by tests/it/browser.rs, which starts the collector and its agents.
//
// Environment: HATANG_URL (the collector), HATANG_TOKEN (a viewer token), HATANG_UNIT (a commune
// unit with reporting machines, reached by drilling down from the top of the tree),
// HATANG_UTC_OFFSET (the collector's utc_offset, "+07:00"), HATANG_ARTIFACTS (a directory),
// HATANG_CHROMIUM (default /usr/bin/chromium). Exit status 0 only if every check held.

import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set (see the top of ui.mjs)`);
    process.exit(2);
  }
  return value;
}

const base = need('HATANG_URL').replace(/\/$/, '');
const token = need('HATANG_TOKEN');
const unitCode = need('HATANG_UNIT');
const offsetText = need('HATANG_UTC_OFFSET');
const artifacts = need('HATANG_ARTIFACTS');
const executablePath = process.env.HATANG_CHROMIUM || '/usr/bin/chromium';

// The flags ENVIRONMENT.md lists: no sandbox (root in CI), no GPU, no traffic but the page's.
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

/** Minutes east of UTC of an offset written `+07:00` / `-03:30`. */
function offsetMinutes(text) {
  const m = /^([+-])(\d{2}):(\d{2})$/.exec(text);
  assert.ok(m, `HATANG_UTC_OFFSET ${JSON.stringify(text)} is not like +07:00`);
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
}
const OFFSET = offsetMinutes(offsetText);
const ZONE = `UTC${offsetText}`;

/** Unix seconds as the pages should show them: DD/MM/YYYY HH:MM in the collector's offset. */
function localTime(unix) {
  const d = new Date((unix + OFFSET * 60) * 1000);
  const two = (n) => String(n).padStart(2, '0');
  return `${two(d.getUTCDate())}/${two(d.getUTCMonth() + 1)}/${d.getUTCFullYear()} ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}`;
}

/** Unix seconds as RFC 3339 UTC without fractions, as the `<time datetime>` attributes say. */
function isoUtc(unix) {
  return new Date(unix * 1000).toISOString().replace('.000Z', 'Z');
}

/** The number in a shown count or percentage, in either language's writing. */
function shownNumber(text, lang) {
  const cleaned = lang === 'vi'
    ? text.replace(/\./g, '').replace(',', '.')
    : text.replace(/,/g, '');
  const n = Number.parseFloat(cleaned.replace(/[^0-9.+-]/g, ''));
  assert.ok(Number.isFinite(n), `no number in ${JSON.stringify(text)}`);
  return n;
}

/**
 * A shown percentage (one decimal, rounded down, so a ratio short of its target never reads
 * as the target) against an API ratio.
 */
function assertPercent(text, ratio, lang, what) {
  if (ratio === null || ratio === undefined) {
    assert.equal(text.trim(), '–', what);
    return;
  }
  const shown = shownNumber(text, lang);
  const below = ratio * 100 - shown;
  assert.ok(below > -1e-9 && below < 0.1 + 1e-9, `${what}: shows ${text}, API ${ratio}`);
  const written = lang === 'vi' ? /^\d+,\d %$/ : /^\d+\.\d%$/;
  assert.match(text.trim(), written, `${what}: ${text} is not written the ${lang} way`);
}

async function api(pathAndQuery) {
  const reply = await fetch(base + pathAndQuery, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(reply.status, 200, `GET ${pathAndQuery}: ${reply.status}`);
  return reply.json();
}

/** Every item of a paged API list (`/api/v1/agents`, `/api/v1/units`): `key` of each page. */
async function everything(list, key, query = '') {
  const all = [];
  let after = '';
  for (;;) {
    const page = await api(`${list}?limit=1000${query}${after}`);
    all.push(...page[key]);
    if (!page.next) return all;
    after = `&after=${encodeURIComponent(page.next)}`;
  }
}

const agents = (query) => everything('/api/v1/agents', 'agents', `&${query}`);

const shots = [];
async function shoot(page, size, name) {
  const file = path.join(artifacts, `${size}-${String(shots.length + 1).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

/** Characters of `selector`'s text beyond ASCII that render as the missing-glyph box: each is
 * drawn in the element's font and compared with a code point no font has. */
async function tofu(page, selector) {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel);
    const style = getComputedStyle(el);
    const font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const canvas = document.createElement('canvas');
    canvas.width = 64;
    canvas.height = 64;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const draw = (ch) => {
      ctx.clearRect(0, 0, 64, 64);
      ctx.font = font;
      ctx.fillText(ch, 8, 44);
      return ctx.getImageData(0, 0, 64, 64).data.join(',');
    };
    const missing = draw('\u0378'); // unassigned: every font lacks it
    const chars = [...new Set([...el.textContent].filter((c) => c.codePointAt(0) > 0x7f && c.trim()))];
    return { chars: chars.join(''), tofu: chars.filter((c) => draw(c) === missing).join('') };
  }, selector);
}

async function assertRendersVietnamese(page, selector) {
  const { chars, tofu: missing } = await tofu(page, selector);
  assert.ok(chars.length > 0, `${selector}: no Vietnamese letters to check`);
  assert.equal(missing, '', `${selector}: these letters render as boxes: ${missing}`);
  return chars;
}

/** A phone page must not scroll sideways. */
async function assertFitsWidth(page, what) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= client, `${what}: ${scroll}px wide in a ${client}px screen`);
}

const text = async (locator) => (await locator.innerText()).trim();

/** RFC 4180 rows (quoted fields with commas, doubled quotes). */
function parseCsv(body) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (quoted) {
      if (c === '"' && body[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n') { row.push(field.replace(/\r$/, '')); rows.push(row); row = []; field = ''; }
    else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

async function signIn(page) {
  await page.goto(`${base}/`);
  assert.equal(new URL(page.url()).pathname, '/login', 'a page without a session leads to the sign-in');
  await page.fill('#token', token);
  await Promise.all([page.waitForURL(`${base}/`), page.click('form[action="/login"] button[type=submit]')]);
}

async function checkOverview(page, lang) {
  const coverage = await api('/api/v1/coverage');
  const rows = page.locator('tr[data-level][data-ratio][data-target]');
  assert.equal(await rows.count(), coverage.levels.length, 'one equipment row per level');
  for (const [i, level] of coverage.levels.entries()) {
    const row = rows.nth(i);
    const what = `overview ${level.level}`;
    assert.equal(await row.getAttribute('data-level'), level.level, what);
    const ratio = await row.getAttribute('data-ratio');
    assert.equal(ratio === '' ? null : Number(ratio), level.equipment_ratio ?? null, what);
    const cells = row.locator('td');
    assert.equal(shownNumber(await text(cells.nth(0)), lang), level.units, `${what} units`);
    assert.equal(shownNumber(await text(cells.nth(1)), lang), level.staff, `${what} staff`);
    assert.equal(shownNumber(await text(cells.nth(2)), lang), level.equipped_staff, `${what} equipped`);
    assertPercent(await text(cells.nth(3)), level.equipment_ratio, lang, `${what} ratio`);
  }
  assert.ok(coverage.levels.some((l) => l.equipment_ratio > 0), 'some level has equipped staff');

  const online = await agents('role=workstation&state=online');
  const shownOnline = shownNumber(await text(page.locator('[data-state="online"] b')), lang);
  assert.equal(shownOnline, online.length, 'workstations online');
  assert.ok(online.length > 0, 'some workstation is online');
  const servers = await agents('role=server');
  const hosts = page.locator('[data-hosts-up]');
  assert.equal(Number(await hosts.getAttribute('data-hosts')), servers.length, 'hosts');
  assert.equal(Number(await hosts.getAttribute('data-hosts-up')),
    servers.filter((s) => s.state === 'online').length, 'hosts up');

  // "Figures as of <time> (UTC+07:00)": the local text is the instant in the configured offset.
  const stamp = page.locator('main p.muted time').first();
  const instant = Date.parse(await stamp.getAttribute('datetime')) / 1000;
  assert.equal(await text(stamp), localTime(instant), 'the figures time in the offset');
  assert.ok(Math.abs(instant - coverage.at) < 120, 'the figures are the current ones');
  assert.ok((await text(page.locator('main p.muted').first())).endsWith(`(${ZONE})`));
  assert.ok((await text(page.locator('footer'))).includes(ZONE), 'the footer names the zone');
  return { levels: coverage.levels, online: online.length };
}

/** The unit rows of a table (`tr[data-unit]`): the units `codes` names, in that order, each
 * with the API's name and figures. */
async function checkUnitRows(page, byCode, codes, lang, what) {
  const rows = page.locator('tr[data-unit]');
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.unit));
  assert.deepEqual(shown, codes, `${what}: the units the API lists`);
  assert.ok(codes.length > 0, `${what}: no units`);
  for (const [i, code] of codes.entries()) {
    const row = rows.nth(i);
    const u = byCode.get(code);
    assert.equal(await text(row.locator('th a')), u.name, `${what} ${code} name`);
    const cells = row.locator('td');
    assert.equal(shownNumber(await text(cells.nth(1)), lang), u.staff, `${what} ${code} staff`);
    assert.equal(shownNumber(await text(cells.nth(2)), lang), u.equipped_staff, `${what} ${code} equipped`);
    assertPercent(await text(cells.nth(3)), u.equipment_ratio, lang, `${what} ${code} ratio`);
  }
}

/** A machine row or fact's time against the API's Unix time. */
async function assertTime(locator, unix, what) {
  const time = locator.locator('time');
  assert.equal(await time.getAttribute('datetime'), isoUtc(unix), what);
  assert.equal(await text(time), localTime(unix), what);
}

async function main() {
  await mkdir(artifacts, { recursive: true });
  // Screenshots of an earlier run would pass for this one's.
  for (const old of (await readdir(artifacts)).filter((f) => /^(desktop|phone)-\d{2}-.*\.png$/.test(f))) {
    await unlink(path.join(artifacts, old));
  }
  const browser = await chromium.launch({ executablePath, args: FLAGS, headless: true });
  const log = (line) => console.log(line);
  log(`chromium ${browser.version()} at ${executablePath}; collector ${base}`);
  try {
    const desktop = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
    const page = await desktop.newPage();
    const problems = [];
    const watch = (p) => {
      p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      p.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()} (${m.location().url})`);
      });
    };
    watch(page);

    // Sign in through the form.
    await page.goto(`${base}/login`);
    await shoot(page, 'desktop', 'login');
    await signIn(page);
    assert.equal(await page.getAttribute('html', 'lang'), 'vi', 'Vietnamese by default');

    // Overview.
    const overview = await checkOverview(page, 'vi');
    const overviewTitle = await text(page.locator('h1.title'));
    const vietnamese = await assertRendersVietnamese(page, 'h1.title');
    await assertRendersVietnamese(page, 'header nav');
    await shoot(page, 'desktop', 'overview');
    log(`overview: ${overview.levels.map((l) => `${l.level} ${l.equipped_staff}/${l.staff}`).join(', ')}; ` +
      `${overview.online} workstations online; "${overviewTitle}" renders ${vietnamese} with glyphs`);

    // The units tree, from the top down to the commune.
    const units = await everything('/api/v1/units', 'units');
    const byCode = new Map(units.map((u) => [u.code, u]));
    await Promise.all([page.waitForURL(`${base}/units`), page.click('nav a[href="/units"]')]);
    const roots = units.filter((u) => !byCode.has(u.parent_code)).map((u) => u.code);
    await checkUnitRows(page, byCode, roots, 'vi', 'units');
    await shoot(page, 'desktop', 'units');
    const target = await api(`/api/v1/units/${encodeURIComponent(unitCode)}`);
    assert.equal(target.unit.level, 'commune', `${unitCode} is a commune`);
    const trail = [];
    for (let code = target.unit.parent_code; code; code = byCode.get(code)?.parent_code) trail.unshift(code);
    for (const code of trail) {
      await Promise.all([
        page.waitForURL(`${base}/units/${encodeURIComponent(code)}`),
        page.click(`tr[data-unit="${code}"] th a`),
      ]);
      const { children } = await api(`/api/v1/units/${encodeURIComponent(code)}`);
      await checkUnitRows(page, byCode, children, 'vi', `units under ${code}`);
      await shoot(page, 'desktop', `unit-${code}`);
    }
    await Promise.all([
      page.waitForURL(`${base}/units/${encodeURIComponent(unitCode)}`),
      page.click(`tr[data-unit="${unitCode}"] th a`),
    ]);
    const tiles = page.locator(`section.tiles[data-unit="${unitCode}"]`);
    assert.equal(Number(await tiles.getAttribute('data-ratio')), target.unit.equipment_ratio, 'commune ratio');
    const big = tiles.locator('.big');
    assert.equal(shownNumber(await text(big.nth(0)), 'vi'), target.unit.staff, 'commune staff');
    assert.equal(shownNumber(await text(big.nth(1)), 'vi'), target.unit.equipped_staff, 'commune equipped');
    assertPercent(await text(big.nth(2)), target.unit.equipment_ratio, 'vi', 'commune ratio');
    assert.ok(target.unit.equipped_staff > 0, 'the commune has equipped staff');
    assert.equal(await text(page.locator('h1.title')), target.unit.name);
    const machines = page.locator('tr[data-agent]');
    assert.equal(await machines.count(), target.agents.length, 'one row per machine of the commune');
    for (const a of target.agents) {
      await assertTime(page.locator(`tr[data-agent="${a.id}"]`), a.last_report_at, `machine ${a.id} last report`);
    }
    await shoot(page, 'desktop', `unit-${unitCode}`);
    log(`unit ${unitCode} "${target.unit.name}": ${target.unit.equipped_staff}/${target.unit.staff} staff equipped, ` +
      `${target.agents.length} machines, reached through ${trail.join(' › ')}`);

    // A machine of the commune.
    const first = target.agents[0];
    await Promise.all([
      page.waitForURL(`${base}/machines/${encodeURIComponent(first.id)}`),
      page.click(`tr[data-agent="${first.id}"] th a`),
    ]);
    const agent = await api(`/api/v1/agents/${encodeURIComponent(first.id)}`);
    const facts = page.locator(`dl.facts[data-agent="${first.id}"]`);
    assert.equal(await facts.getAttribute('data-state'), agent.state, 'machine state');
    assert.equal(await text(page.locator('h1.title')), agent.hostname);
    await assertTime(facts.locator('dd').nth(2), agent.last_report_at, 'machine last report');
    await assertTime(facts.locator('dd').nth(3), agent.enrolled_at, 'machine enrolled');
    await shoot(page, 'desktop', 'machine');
    log(`machine ${agent.id}: ${agent.state}, last report ${localTime(agent.last_report_at)} ${ZONE} ` +
      `(${isoUtc(agent.last_report_at)})`);

    // The data centre.
    await Promise.all([page.waitForURL(`${base}/datacentre`), page.click('nav a[href="/datacentre"]')]);
    const servers = await agents('role=server');
    assert.ok(servers.length > 0, 'a server reported');
    assert.equal(await page.locator('tr[data-host]').count(), servers.length, 'one row per server');
    for (const s of servers) {
      const row = page.locator('tr[data-host]', { has: page.locator(`a[href="/machines/${s.id}"]`) });
      assert.equal(await row.getAttribute('data-state'), s.state, `server ${s.id}`);
      await assertTime(row, s.last_report_at, `server ${s.id} last report`);
    }
    const services = (await api('/api/v1/services')).services;
    assert.equal(await page.locator('tr[data-service]').count(), services.length, 'one row per application');
    for (const s of services) {
      assert.equal(await page.getAttribute(`tr[data-service="${s.name}"]`, 'data-up'), String(s.up), s.name);
    }
    await assertRendersVietnamese(page, 'h1.title');
    await shoot(page, 'desktop', 'datacentre');
    log(`data centre: ${servers.length} servers, ${services.length} applications as the API says`);

    // Vietnamese → English, remembered on the next page, and back.
    const viNav = await text(page.locator('nav a[href="/"]'));
    await Promise.all([page.waitForURL(/lang=en/), page.click('a.lang')]);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    const enNav = await text(page.locator('nav a[href="/"]'));
    assert.notEqual(enNav, viNav, 'the navigation is translated');
    assert.equal(enNav, 'Overview');
    await Promise.all([page.waitForURL(`${base}/`), page.click('nav a[href="/"]')]);
    assert.equal(await page.getAttribute('html', 'lang'), 'en', 'English is remembered');
    await checkOverview(page, 'en');
    await shoot(page, 'desktop', 'overview-en');
    await Promise.all([page.waitForURL(/lang=vi/), page.click('a.lang')]);
    assert.equal(await text(page.locator('nav a[href="/"]')), viNav);
    assert.equal(viNav, 'Tổng quan');
    log(`language: "${viNav}" → "${enNav}" → "${viNav}"`);

    // A CSV through the page's link: the units under the commune's parent, a spreadsheet's UTF-8.
    const parent = target.unit.parent_code;
    await page.goto(`${base}/units/${encodeURIComponent(parent)}`);
    const link = page.locator('a.csv[href*="units.csv"]');
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const file = path.join(artifacts, download.suggestedFilename());
    await download.saveAs(file);
    const bytes = await readFile(file);
    assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'the CSV starts with a UTF-8 byte-order mark');
    const rows = parseCsv(new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes));
    const header = rows[0];
    for (const column of ['code', 'name', 'staff', 'equipped_staff', 'equipment_ratio']) {
      assert.ok(header.includes(column), `CSV header ${header} has ${column}`);
    }
    const col = (name) => header.indexOf(name);
    const children = (await api(`/api/v1/units/${encodeURIComponent(parent)}`)).children;
    assert.equal(rows.length - 1, children.length, 'one CSV row per unit under the parent');
    for (const row of rows.slice(1)) {
      const u = byCode.get(row[col('code')]);
      assert.ok(u, `CSV unit ${row[col('code')]}`);
      assert.equal(row[col('name')], u.name, 'the Vietnamese name is intact');
      assert.equal(Number(row[col('staff')]), u.staff);
      assert.equal(Number(row[col('equipped_staff')]), u.equipped_staff);
    }
    const ours = rows.find((r) => r[col('code')] === unitCode);
    assert.equal(ours[col('name')], target.unit.name);
    assert.ok(/[^\x00-\x7f]/.test(target.unit.name), `${target.unit.name} has Vietnamese letters`);
    log(`CSV ${file}: ${rows.length - 1} rows, header ${header.join(',')}; "${ours[col('name')]}" intact`);

    // Phone size: every page again, none scrolling sideways.
    const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
    const small = await phone.newPage();
    watch(small);
    await small.goto(`${base}/login`);
    await assertFitsWidth(small, 'phone /login');
    await shoot(small, 'phone', 'login');
    await signIn(small);
    for (const [where, name] of [
      ['/', 'overview'],
      ['/units', 'units'],
      [`/units/${encodeURIComponent(parent)}`, `unit-${parent}`],
      [`/units/${encodeURIComponent(unitCode)}`, `unit-${unitCode}`],
      [`/machines/${encodeURIComponent(first.id)}`, 'machine'],
      ['/datacentre', 'datacentre'],
    ]) {
      await small.goto(base + where);
      assert.equal(new URL(small.url()).pathname, where, 'signed in on the phone too');
      await assertFitsWidth(small, `phone ${where}`);
      await shoot(small, 'phone', name);
    }
    await phone.close();

    // Sign out: the session ends and a protected page leads back to the sign-in.
    await Promise.all([page.waitForURL(`${base}/login`), page.click('form.logout button')]);
    await page.goto(`${base}/units`);
    assert.equal(new URL(page.url()).pathname, '/login', 'signed out, /units leads to the sign-in');
    await shoot(page, 'desktop', 'signed-out');
    log('sign-out: /units now leads to /login');

    assert.deepEqual(problems, [], 'the pages log no errors');
    await desktop.close();
  } finally {
    await browser.close();
  }
  log(`${shots.length} screenshots in ${artifacts}:`);
  for (const s of shots) log(`  ${s}`);
}

main().then(
  () => console.log('browser checks passed'),
  (e) => {
    console.error(`browser check failed: ${e.stack || e}`);
    process.exitCode = 1;
  },
);
