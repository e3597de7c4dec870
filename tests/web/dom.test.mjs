// dom.test.mjs - the pure formatting helpers of web/app/dom.js (ordinal,
// waitingText, duration, bytes); its element builders need a document and
// are covered by the browser tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importWeb } from './web.mjs';

const { ordinal, waitingText, duration, bytes } = await importWeb('app/dom.js');

test('dom: ordinal', () => {
  const want = {
    1: '1st', 2: '2nd', 3: '3rd', 4: '4th', 5: '5th', 9: '9th', 10: '10th',
    11: '11th', 12: '12th', 13: '13th', 14: '14th', 20: '20th',
    21: '21st', 22: '22nd', 23: '23rd', 24: '24th', 100: '100th',
    101: '101st', 102: '102nd', 103: '103rd', 111: '111th', 112: '112th', 113: '113th',
    121: '121st', 1001: '1001st', 1011: '1011th', 1012: '1012th',
  };
  for (const [n, s] of Object.entries(want)) assert.equal(ordinal(Number(n)), s, `ordinal(${n})`);
});

test('dom: waitingText names the reason and the place in line', () => {
  const reason = 'active user limit reached: 3 of 3 users active';
  assert.equal(waitingText({ waiting_reason: reason, queue_position: 2 }),
    'active user limit reached: 3 of 3 users active — you are 2nd in line');
  assert.equal(waitingText({ waiting_reason: reason, queue_position: 1 }), `${reason} — you are 1st in line`);
  assert.equal(waitingText({ waiting_reason: reason, queue_position: 11 }), `${reason} — you are 11th in line`);
  assert.equal(waitingText({ waiting_reason: reason }), reason, 'no position');
  assert.equal(waitingText({ waiting_reason: reason, queue_position: null }), reason, 'a null position');
  assert.equal(waitingText({ queue_position: 3 }), 'you are 3rd in line', 'no reason');
  assert.equal(waitingText({ waiting_reason: '', queue_position: 3 }), 'you are 3rd in line', 'an empty reason');
  assert.equal(waitingText({}), '', 'neither');
  assert.equal(waitingText({ waiting_reason: null, queue_position: 0 }), '', 'position 0 is no position');
});

test('dom: duration between two ISO times', () => {
  const t0 = '2024-05-01T10:00:00Z';
  const at = (s) => new Date(Date.parse(t0) + s * 1000).toISOString();
  assert.equal(duration(null, at(5)), '');
  assert.equal(duration('', at(5)), '');
  assert.equal(duration(t0, t0), '0 s');
  assert.equal(duration(t0, at(4)), '4 s');
  assert.equal(duration(t0, at(4.4)), '4 s');
  assert.equal(duration(t0, at(4.6)), '5 s');
  assert.equal(duration(t0, at(59)), '59 s');
  assert.equal(duration(t0, at(59.6)), '1 min 0 s', 'rounded up to a minute');
  assert.equal(duration(t0, at(60)), '1 min 0 s');
  assert.equal(duration(t0, at(200)), '3 min 20 s');
  assert.equal(duration(t0, at(3599)), '59 min 59 s');
  assert.equal(duration(t0, at(3600)), '1 h 0 min');
  assert.equal(duration(t0, at(2 * 3600 + 5 * 60 + 59)), '2 h 5 min');
  assert.equal(duration(t0, at(30 * 3600)), '30 h 0 min');
  assert.equal(duration(at(10), t0), '0 s', 'never negative (clock skew)');
  // Without an end: until now.
  assert.equal(duration(new Date(Date.now() - 7000).toISOString()), '7 s');
  assert.equal(duration(new Date(Date.now() - 125000).toISOString(), null), '2 min 5 s');
});

test('dom: bytes', () => {
  const want = [
    [0, '0 B'], [1, '1 B'], [1023, '1023 B'],
    [1024, '1.0 KB'], [1536, '1.5 KB'], [1024 * 1024 - 1, '1024.0 KB'],
    [1024 * 1024, '1.0 MB'], [5.25 * 1024 * 1024, '5.3 MB'], [1024 ** 3 - 1, '1024.0 MB'],
    [1024 ** 3, '1.00 GB'], [2.5 * 1024 ** 3, '2.50 GB'], [1536 * 1024 ** 3, '1536.00 GB'],
  ];
  for (const [n, s] of want) assert.equal(bytes(n), s, `bytes(${n})`);
});
