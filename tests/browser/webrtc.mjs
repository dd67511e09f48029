// Two browsers with JsSIP, driven in headless Chromium by playwright-core
// (tests/webrtc_browser.rs runs this inside a network namespace with sipc,
// rtpengine and a SIPp media server):
//
//   1. alice and bob register over WS_URL;
//   2. alice calls `service` (not registered: sipc sends it to the SIPp
//      UAS, which echoes RTP) and must receive audio over DTLS-SRTP;
//   3. bob calls alice, who answers: both must receive audio;
//   4. each call is hung up and ends.
//
// Prints one JSON object on stdout: what each step saw. Every wait is
// bounded; a failed step ends the run with its error in the object.

import { chromium } from 'playwright-core';
import { buildSync } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const WS_URL = process.env.WS_URL ?? 'ws://127.0.0.1:8080';
const DOMAIN = process.env.SIP_DOMAIN ?? 'webrtc.example.com';
const PAGE = 'http://127.0.0.1:8099/';

// JsSIP ships CommonJS only: bundle it for the page.
const bundle = buildSync({
  stdin: { contents: "window.JsSIP = require('jssip');", resolveDir: here },
  bundle: true,
  format: 'iife',
  write: false,
  logLevel: 'silent',
}).outputFiles[0].text;

const result = { steps: [] };
const step = (name, data) => {
  result.steps.push({ name, ...data });
  console.error(`step ${name}: ${JSON.stringify(data)}`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    '--ignore-certificate-errors',
    // The page and the proxy are both on this host; Chromium's Local
    // Network Access checks would still ask the user before the page may
    // open its WebSocket.
    '--disable-features=LocalNetworkAccessChecks,LocalNetworkAccessChecksWebSockets',
  ],
});

async function phone(user) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  // The page comes from here, at an http://127.0.0.1 address: a secure
  // context, where getUserMedia works.
  await page.route(`${PAGE}**`, (route) =>
    route.fulfill({
      contentType: 'text/html',
      body: `<!doctype html><html><body><script>${bundle}</script></body></html>`,
    }),
  );
  page.on('console', (m) => console.error(`[${user}] ${m.text()}`));
  await page.goto(PAGE);
  await page.evaluate(
    ({ url, user, domain }) =>
      new Promise((resolve, reject) => {
        const ua = new JsSIP.UA({
          sockets: [new JsSIP.WebSocketInterface(url)],
          uri: `sip:${user}@${domain}`,
          register: true,
          session_timers: false,
        });
        window.ua = ua;
        window.sessions = [];
        ua.on('newRTCSession', (e) => {
          window.sessions.push(e.session);
          if (e.originator === 'remote') {
            e.session.answer({ mediaConstraints: { audio: true, video: false } });
          }
        });
        ua.on('registered', () => resolve());
        ua.on('registrationFailed', (e) => reject(new Error(`registration failed: ${e.cause}`)));
        setTimeout(() => reject(new Error('not registered within 10 s')), 10000);
        ua.start();
      }),
    { url: WS_URL, user, domain: DOMAIN },
  );
  return page;
}

// Calls `target` and waits until the call is confirmed.
function call(page, target) {
  return page.evaluate(
    ({ target, domain }) =>
      new Promise((resolve, reject) => {
        const s = window.ua.call(`sip:${target}@${domain}`, {
          mediaConstraints: { audio: true, video: false },
          pcConfig: { iceServers: [] },
        });
        s.on('confirmed', () => resolve());
        s.on('failed', (e) => reject(new Error(`call failed: ${e.cause}`)));
        setTimeout(() => reject(new Error('not confirmed within 15 s')), 15000);
      }),
    { target, domain: DOMAIN },
  );
}

// The audio the page's latest call received, and its DTLS state, once
// bytes arrive (at most 10 s).
function audio(page) {
  return page.evaluate(async () => {
    const s = window.sessions[window.sessions.length - 1];
    let bytes = 0;
    let dtls = '';
    for (let i = 0; i < 50; i++) {
      const stats = await s.connection.getStats();
      bytes = 0;
      stats.forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') bytes += r.bytesReceived;
        if (r.type === 'transport') dtls = r.dtlsState;
      });
      if (bytes > 0 && dtls === 'connected') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    return { bytes, dtls, sdp: s.connection.remoteDescription?.sdp ?? '' };
  });
}

// Hangs up the page's latest call and waits until it has ended.
function hangUp(page) {
  return page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const s = window.sessions[window.sessions.length - 1];
        s.on('ended', () => resolve());
        setTimeout(() => reject(new Error('not ended within 5 s')), 5000);
        s.terminate();
      }),
  );
}

// Waits until the page's latest call has ended (the other side hung up).
function ended(page) {
  return page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const s = window.sessions[window.sessions.length - 1];
        if (s.isEnded()) return resolve();
        s.on('ended', () => resolve());
        setTimeout(() => reject(new Error('not ended within 5 s')), 5000);
      }),
  );
}

const timer = setTimeout(() => {
  result.error = 'the run took over 80 s';
  console.log(JSON.stringify(result));
  process.exit(1);
}, 80000);

try {
  const alice = await phone('alice');
  const bob = await phone('bob');
  step('registered', { users: ['alice', 'bob'] });

  await call(alice, 'service');
  const a = await audio(alice);
  step('alice-service', { bytes: a.bytes, dtls: a.dtls, sdp: a.sdp });
  await hangUp(alice);
  step('alice-service-ended', {});

  await call(bob, 'alice');
  const b = await audio(bob);
  const a2 = await audio(alice);
  step('bob-alice', {
    bob_bytes: b.bytes,
    bob_dtls: b.dtls,
    alice_bytes: a2.bytes,
    alice_dtls: a2.dtls,
    sdp: b.sdp,
  });
  await hangUp(bob);
  await ended(alice);
  step('bob-alice-ended', {});
} catch (e) {
  result.error = String(e?.message ?? e);
}
clearTimeout(timer);
await browser.close();
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);
