// A scripted stand-in for the `@railgun/core` addon (SPEC F's classes), for the unit tests of
// `electron/*` that must not depend on a native build. It records every call; the end-to-end
// test (`electron_e2e.test.mjs`) uses the real addon against the real server instead.

function codeError(code, message) {
  const e = new Error(message);
  e.code = code;
  return e;
}

export function createFakeAddon() {
  const calls = [];
  const made = { updaters: [], analytics: [], flags: [], health: [] };

  class Updater {
    constructor(opts) {
      this.opts = opts;
      this.cb = null;
      this.available = { version: '0.2.0', releaseDate: '2026-01-01T00:00:00Z', releaseNotes: 'Faster', files: [{ url: 'http://x/a.tar.gz', size: 3, sha256: 'ab'.repeat(32) }] };
      this.checkGate = null; // a promise the check waits on, when set
      made.updaters.push(this);
    }
    onEvent(cb) {
      this.cb = cb;
    }
    emit(name, payload) {
      if (this.cb) this.cb(name, payload);
    }
    async checkForUpdates() {
      calls.push(['checkForUpdates']);
      this.emit('checking-for-update', null);
      if (this.checkGate) await this.checkGate;
      if (this.failCheck) {
        const e = codeError('ERR_NETWORK', 'connection refused');
        // The addon's error payload is plain data, not an Error.
        this.emit('error', { message: e.message, code: e.code, coreCode: 'ERR_UPDATER_CHECK' });
        throw e;
      }
      if (this.available) this.emit('update-available', this.available);
      else this.emit('update-not-available', { version: this.opts.currentVersion });
      return this.available;
    }
    async downloadUpdate() {
      calls.push(['downloadUpdate']);
      this.emit('download-progress', { percent: 100, transferred: 3, total: 3, bytesPerSecond: 3 });
      this.emit('update-downloaded', this.available);
      return { version: this.available.version, path: '/tmp/x', sha256: 'ab'.repeat(32), size: 3 };
    }
    async installUpdate() {
      calls.push(['installUpdate']);
      return { version: this.available.version, previous: this.opts.currentVersion };
    }
    startAutoCheck(ms) {
      calls.push(['startAutoCheck', ms]);
    }
    async stop() {
      calls.push(['stop']);
    }
    markBootSuccessful() {
      calls.push(['markBootSuccessful']);
    }
  }

  class Analytics {
    constructor(opts) {
      this.opts = opts;
      this.consent = opts.consent ?? 'unknown';
      this.events = [];
      made.analytics.push(this);
    }
    track(name, properties) {
      calls.push(['track', name, properties]);
      this.events.push({ name, properties });
    }
    screen(name) {
      calls.push(['screen', name]);
      this.events.push({ name: 'screen_view', properties: { screen_name: name } });
    }
    startTimer(name) {
      calls.push(['startTimer', name]);
    }
    stopTimer(name, properties) {
      calls.push(['stopTimer', name, properties]);
    }
    setConsent(c) {
      calls.push(['setConsent', c]);
      this.consent = c;
    }
    getConsent() {
      return this.consent;
    }
    async flush() {
      return { sent: this.events.length, pending: 0 };
    }
    async shutdown() {
      calls.push(['shutdown']);
    }
    userId() {
      return 'f'.repeat(64);
    }
  }

  class FeatureFlags {
    constructor(opts) {
      this.opts = opts;
      this.values = { new_composer: true, dark_mode: false };
      this.cbs = [];
      made.flags.push(this);
    }
    async refresh() {
      calls.push(['refresh']);
      return 'updated';
    }
    get(key) {
      calls.push(['get', key]);
      return this.values[key] === true;
    }
    details(key) {
      return { value: this.get(key), reason: key in this.values ? 'STATIC' : 'FLAG_NOT_FOUND' };
    }
    getAll() {
      return { ...this.values };
    }
    getAnnouncements() {
      return [{ id: 'a1', type: 'info', title: 'Hello', message: 'New release', dismissible: true, showOnce: false }];
    }
    dismiss(id) {
      calls.push(['dismiss', id]);
    }
    getMaintenance() {
      return { active: false, allowReadOnly: true };
    }
    isKillSwitchActive() {
      return { active: false, message: null };
    }
    onChange(cb) {
      this.cbs.push(cb);
    }
    close() {
      calls.push(['close']);
      this.cbs = [];
    }
    /** Test helper: change flags and tell the listeners, as the addon does after a refresh. */
    set(values) {
      this.values = { ...values };
      for (const cb of this.cbs) cb();
    }
  }

  class Health {
    constructor(opts) {
      this.opts = opts;
      this.errors = 0;
      this.crashes = 0;
      this.consent = opts.consent ?? 'unknown';
      this.shutdownCalls = 0;
      /** Set to a promise to hold `shutdown()` until it settles, or to an Error to fail it. */
      this.shutdownGate = null;
      made.health.push(this);
    }
    startup() {
      return { recorded: this.consent === 'granted' };
    }
    recordError() {
      calls.push(['recordError']);
      this.errors += 1;
    }
    recordCrash() {
      calls.push(['recordCrash']);
      this.crashes += 1;
    }
    setConsent(c) {
      calls.push(['health.setConsent', c]);
      this.consent = c;
    }
    async flush() {
      return { sent: 0, pending: 0 };
    }
    async shutdown() {
      calls.push(['health.shutdown']);
      this.shutdownCalls += 1;
      if (this.shutdownGate instanceof Error) throw this.shutdownGate;
      if (this.shutdownGate) await this.shutdownGate;
    }
  }

  return { Updater, Analytics, FeatureFlags, Health, calls, made };
}

/** An Electron `app` stand-in: name, version and the user-data folder. */
export function fakeElectronApp(userData = '/tmp/railgun-test-user-data') {
  const calls = [];
  return {
    calls,
    getName: () => 'rail-gun',
    getVersion: () => '0.1.0',
    getPath: (what) => {
      if (what !== 'userData') throw new Error(`unexpected path ${what}`);
      return userData;
    },
    relaunch: () => calls.push('relaunch'),
    quit: () => calls.push('quit'),
  };
}
