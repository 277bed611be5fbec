// Types of electron/main.js: Railgun in Electron's main process.
//
// The functions take Electron's own objects (`ipcMain`, `app`) but are typed structurally, so
// these declarations need neither the `electron` package nor the native addon's types.

import { EventEmitter } from 'events';

// ---------------------------------------------------------------------------------------------
// Shared data shapes (what crosses IPC; also the addon's answers)

/** Analytics consent. `denied` purges the queue; `unknown` records nothing. */
export type Consent = 'granted' | 'denied' | 'unknown';

/** A property value: a string (≤ 256 characters), a finite number or a boolean. */
export type PropertyValue = string | number | boolean;

/** Event properties: at most 32, keys `[A-Za-z0-9_.-]{1,64}`. */
export type EventProperties = Record<string, PropertyValue>;

/** What an event is about (`src/analytics/event.rs`, `EventCategory`). */
export type EventCategory = 'session' | 'navigation' | 'feature' | 'update' | 'error' | 'custom';

/** One analytics event on the wire (`src/analytics/event.rs`, `AnalyticsEvent`, camelCase). */
export interface AnalyticsEvent {
  /** UUID (v7 from railgun clients), the key for de-duplication. */
  id: string;
  /** Event name, `^[a-z][a-z0-9_]{0,63}$`. */
  name: string;
  /** Category. */
  category: EventCategory;
  /** Hashed install/user id (never a raw machine id). */
  userId: string;
  /** Session id. */
  sessionId: string;
  /** When it happened, RFC 3339, by the client's clock. */
  timestamp: string;
  /** App version. */
  appVersion: string;
  /** `darwin`, `win32`, `linux`. */
  platform: string;
  /** `x64`, `arm64`, `ia32`. */
  arch: string;
  /** Update channel. */
  channel: string;
  /** Properties (string, number or boolean values). */
  properties?: EventProperties;
  /** Duration in milliseconds (timed events, `session_end`). */
  duration?: number;
  /** Increases within a session. */
  sequence: number;
}

/** One downloadable file of an update. */
export interface UpdateFileInfo {
  url: string;
  size: number;
  /** Lowercase hex SHA-256. */
  sha256: string;
}

/** An update (electron-updater's `UpdateInfo` shape, as the addon gives it). */
export interface UpdateInfo {
  version: string;
  /** Release time (RFC 3339). */
  releaseDate: string;
  releaseNotes?: string;
  files: UpdateFileInfo[];
  /** The artifact's URL (electron-updater's `path`). */
  path?: string;
  /** Its SHA-256 (hex). */
  sha256?: string;
  /** Why this version: the channel's rollout, its fallback, or a signed rollback. */
  kind?: 'rollout' | 'fallback' | 'rollback';
}

/** `download-progress` payload. */
export interface ProgressInfo {
  /** 0–100. */
  percent: number;
  transferred: number;
  total: number;
  bytesPerSecond: number;
  /** Whether the file being downloaded is a delta patch. */
  delta?: boolean;
  /** Bytes this update has downloaded so far (a patch given up on included). */
  downloadedBytes?: number;
  /** Size of the full artifact. */
  fullBytes?: number;
}

/** `update-delta-fallback` payload: why a delta patch was not used (the full artifact is downloaded). */
export interface DeltaFallbackInfo {
  version: string;
  /** The installed version the patch applies to. */
  from: string;
  /** Stable code: `no-base`, `base-modified`, `base-mismatch`, `patch-too-large`, `patch-digest-mismatch`, … */
  reason: string;
  message: string;
  patchBytes: number;
  fullBytes: number;
}

/** A verified download waiting to be installed. */
export interface DownloadResult {
  version: string;
  path: string;
  sha256: string;
  size: number;
  /** Whether it came from a delta patch. */
  delta?: boolean;
  /** Bytes this update downloaded (the patch, or the artifact plus any patch given up on). */
  downloadedBytes?: number;
  /** Size of the full artifact. */
  fullBytes?: number;
  /** Why a patch listed for the installed version was not used. */
  deltaFallback?: DeltaFallbackInfo;
}

/** What an install did. */
export interface InstallResult {
  version: string;
  previous?: string;
}

/** An error as it crosses IPC (and the `error` event's payload in the renderer). */
export interface RailgunErrorData {
  /** Stable code: `ERR_SIGNATURE_INVALID`, `ERR_CHECKSUM_MISMATCH`, `ERR_INVALID_ARGUMENT`, … */
  code: string;
  message: string;
}

/** An announcement from the remote config. */
export interface Announcement {
  id: string;
  /** `info`, `warning`, `critical`, … */
  type: string;
  title: string;
  message: string;
  dismissible: boolean;
  showOnce: boolean;
  startTime?: string;
  endTime?: string;
  minVersion?: string;
  maxVersion?: string;
  [extra: string]: unknown;
}

/** The maintenance window. */
export interface MaintenanceStatus {
  active: boolean;
  message?: string;
  allowReadOnly: boolean;
  startTime?: string;
  endTime?: string;
}

/** The emergency kill switch (the specification's `const { active, message } = …`). */
export interface KillSwitchStatus {
  /** Whether it is on: every flag is off. */
  active: boolean;
  /** The config's `emergencyMessage` while it is on; `null` when it is off or there is none. */
  message: string | null;
}

/** Why a flag has its value (OpenFeature reasons). */
export type FlagReason =
  | 'STATIC'
  | 'SPLIT'
  | 'DISABLED'
  | 'KILL_SWITCH'
  | 'VERSION_MISMATCH'
  | 'FLAG_NOT_FOUND'
  | 'ERROR'
  | (string & {});

/** A flag's value with its variant and reason. */
export interface FlagDetails {
  value: boolean;
  variant?: string;
  reason: FlagReason;
}

/**
 * The feature flags' provider events, named as in OpenFeature: `READY` (the first config from
 * the network is in force), `CONFIGURATION_CHANGED` (a new config is in force), `STALE` (the
 * live source is lost; the last good config is served), `ERROR` (a document was refused:
 * signature, schema, a replayed older revision).
 */
export type FlagsEventName = 'READY' | 'CONFIGURATION_CHANGED' | 'STALE' | 'ERROR';

/** A provider event as listeners receive it (plain data, also across IPC). */
export interface FlagsProviderEvent {
  type: FlagsEventName;
  /** The revision now in force (`READY`, `CONFIGURATION_CHANGED`), if the config carries one. */
  revision: number | null;
  /** Why (`STALE`, `ERROR`). */
  reason: string | null;
}

/** electron-updater's event names. */
export type UpdaterEventName =
  | 'checking-for-update'
  | 'update-available'
  | 'update-not-available'
  | 'download-progress'
  | 'update-downloaded'
  | 'update-delta-fallback'
  | 'error';

// ---------------------------------------------------------------------------------------------
// Errors

/** An Error with a stable `code`. */
export class RailgunError extends Error {
  constructor(code: string, message: string);
  readonly code: string;
}

// ---------------------------------------------------------------------------------------------
// Configuration shared by the init functions

/**
 * The parts of Electron's `app` that are used (name, version, user-data folder, relaunch;
 * `initHealth` also listens to its events and quits it).
 */
export interface ElectronAppLike {
  getName(): string;
  getVersion(): string;
  getPath(name: 'userData'): string;
  relaunch?(): void;
  quit?(): void;
  on?(event: string, listener: (...args: any[]) => void): unknown;
  removeListener?(event: string, listener: (...args: any[]) => void): unknown;
}

/** Options every init function takes. Unset ones come from Electron's `app`. */
export interface CommonOptions {
  /** App name (default `app.getName()`). */
  app?: string;
  /** Running version (default `app.getVersion()`). */
  appVersion?: string;
  /** Folder for the client store (default `<userData>/railgun`). */
  stateDir?: string;
  /** Electron's `app` (default `require('electron').app`). */
  electronApp?: ElectronAppLike;
  /** Environment to read `RAILGUN_*` from (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** The addon to use instead of `@railgun/core`'s native one (tests). */
  addon?: unknown;
}

// ---------------------------------------------------------------------------------------------
// Updater

export interface AutoUpdaterOptions extends CommonOptions {
  /** Update server URL (default `RAILGUN_UPDATE_URL`). */
  url?: string;
  /** Channel: `stable`, `beta`, `canary`, … (default `RAILGUN_UPDATE_CHANNEL`, else `stable`). */
  channel?: string;
  /** Check now and every `checkInterval` (default `true`). */
  autoCheck?: boolean;
  /** Milliseconds between automatic checks, ≥ 1000 (default 1 hour; ±10 % jitter). */
  checkInterval?: number;
  /** Download a found update at once (default `true`, as electron-updater). */
  autoDownload?: boolean;
  /** Trusted release keys (default `RAILGUN_UPDATE_PUBLIC_KEY`, comma-separated). */
  publicKeys?: string[];
  /** Trusted rollout (channel-state) keys. */
  rolloutPublicKeys?: string[];
  /** Where versions are installed (default `RAILGUN_INSTALL_ROOT`, else `<stateDir>/install`). */
  installRoot?: string;
  /** Running version (alias of `appVersion`). */
  currentVersion?: string;
  platform?: string;
  arch?: string;
  installId?: string;
  /** Sigstore bundle policy (default `off`). */
  sigstore?: 'off' | 'if-present' | 'required';
  /** Certificate identity (regular expression over the SAN) a Sigstore bundle must carry. */
  sigstoreIdentity?: string;
  /** OIDC issuer of the Sigstore certificate (default: GitHub Actions). */
  sigstoreIssuer?: string;
}

/** The resolved configuration (no key material). */
export interface AutoUpdaterConfig {
  url: string;
  channel: string;
  app: string;
  currentVersion: string;
  installRoot: string;
  stateDir: string;
  checkInterval: number;
}

/** The updater's events and their listeners' arguments. */
export interface AutoUpdaterEvents {
  'checking-for-update': [];
  'update-available': [info: UpdateInfo];
  'update-not-available': [info: UpdateInfo | { version: string }];
  'download-progress': [progress: ProgressInfo];
  'update-downloaded': [info: UpdateInfo];
  'update-delta-fallback': [info: DeltaFallbackInfo];
  error: [error: RailgunError, message: string];
}

/** The auto-updater: electron-updater's event names over the addon's Updater. */
export class RailgunAutoUpdater extends EventEmitter {
  /** Whether a found update is downloaded at once (set by `initAutoUpdater`). */
  readonly autoDownload: boolean;
  /** The resolved configuration. */
  readonly config: AutoUpdaterConfig;
  /** Checks now; the update's info, or `null`. Concurrent calls share one check. */
  checkForUpdates(): Promise<UpdateInfo | null>;
  /** Downloads and verifies the available update. */
  downloadUpdate(): Promise<DownloadResult>;
  /** Applies the downloaded update (the previous version is kept). */
  installUpdate(): Promise<InstallResult>;
  /** Applies the downloaded update, then relaunches the app. */
  quitAndInstall(): Promise<InstallResult>;
  /** Checks now, then every `checkInterval` ms. */
  startAutoCheck(): void;
  /** `idle`, `checking`, `update-available`, `downloading`, `update-downloaded`, `installing`, `installed`. */
  readonly state: string;
  /** The installed version as the updater sees it (moves after an install). */
  readonly currentVersion: string;
  /** Tells the boot guard this version started well. */
  markBootSuccessful(): void;
  /** Stops automatic checks. */
  stop(): Promise<void>;

  on<K extends keyof AutoUpdaterEvents>(event: K, listener: (...args: AutoUpdaterEvents[K]) => void): this;
  once<K extends keyof AutoUpdaterEvents>(event: K, listener: (...args: AutoUpdaterEvents[K]) => void): this;
  off<K extends keyof AutoUpdaterEvents>(event: K, listener: (...args: AutoUpdaterEvents[K]) => void): this;
  addListener<K extends keyof AutoUpdaterEvents>(event: K, listener: (...args: AutoUpdaterEvents[K]) => void): this;
  removeListener<K extends keyof AutoUpdaterEvents>(event: K, listener: (...args: AutoUpdaterEvents[K]) => void): this;
  emit<K extends keyof AutoUpdaterEvents>(event: K, ...args: AutoUpdaterEvents[K]): boolean;
}

/**
 * Creates the auto-updater. Unset options come from `RAILGUN_UPDATE_URL`,
 * `RAILGUN_UPDATE_CHANNEL`, `RAILGUN_UPDATE_PUBLIC_KEY` and Electron's `app`.
 * @throws {RailgunError} `ERR_INVALID_ARGUMENT` when the configuration is incomplete.
 */
export function initAutoUpdater(options?: AutoUpdaterOptions): RailgunAutoUpdater;

// ---------------------------------------------------------------------------------------------
// Analytics

export interface AnalyticsOptions extends CommonOptions {
  /** Server base URL (default `RAILGUN_ANALYTICS_URL`). */
  url?: string;
  /** Log `[Analytics] name {props}`. */
  debug?: boolean;
  /** Share of users recorded, (0, 1] (deterministic per user). */
  sampleRate?: number;
  /** Consent until the user chooses. */
  consent?: Consent;
  /** Channel (default `RAILGUN_UPDATE_CHANNEL`). */
  channel?: string;
  /** Queue but never upload. */
  dryRun?: boolean;
  /** The id events carry (default: the hashed install id). */
  userId?: string;
}

/** Analytics in the main process; names and properties are validated. */
export class RailgunAnalytics {
  /** Records an event; never blocks. @throws {RailgunError} `ERR_INVALID_ARGUMENT` */
  track(name: string, properties?: EventProperties): void;
  /** Records a `screen_view`. */
  screen(name: string): void;
  startTimer(name: string): void;
  /** Records `name` with its duration (ms since `startTimer`); the duration, or `null`. */
  stopTimer(name: string, properties?: EventProperties): number | null;
  setConsent(consent: Consent): void;
  getConsent(): Consent;
  /** Uploads what is queued. */
  flush(): Promise<{ sent: number; pending: number }>;
  /** Flushes and stops the writer. */
  shutdown(): Promise<void>;
  /** The hashed id events carry. */
  userId(): string;
}

/** Starts analytics (server URL from `url` or `RAILGUN_ANALYTICS_URL`). */
export function initAnalytics(options?: AnalyticsOptions): RailgunAnalytics;

// ---------------------------------------------------------------------------------------------
// Feature flags

export interface FeatureFlagsOptions extends CommonOptions {
  /** Config URL (default `RAILGUN_CONFIG_URL`). */
  url?: string;
  /** Milliseconds between refreshes, ≥ 1000 (default 5 minutes). */
  refreshInterval?: number;
  /** Channel (default `RAILGUN_UPDATE_CHANNEL`). */
  channel?: string;
  /** The id users are bucketed by (default: the hashed install id). */
  userId?: string;
  /** Keys the config must be signed with (DSSE). */
  configPublicKeys?: string[];
}

/**
 * Feature flags in the main process; emits `change` when the flags change, and each provider
 * event (`READY`, `CONFIGURATION_CHANGED`, `STALE`, `ERROR`) under its name.
 */
export class RailgunFeatureFlags extends EventEmitter {
  refresh(): Promise<'updated' | 'not-modified' | 'kept-last-good'>;
  get(key: string): boolean;
  details(key: string): FlagDetails;
  getAll(): Record<string, boolean>;
  getAnnouncements(): Announcement[];
  dismiss(id: string): void;
  getMaintenance(): MaintenanceStatus;
  /** The emergency kill switch: `{active, message}`. */
  isKillSwitchActive(): KillSwitchStatus;
  /** Calls `listener()` whenever the flags change; returns the function that removes it. */
  onChange(listener: () => void): () => void;
  /** The highest config revision accepted (a lower one is refused as a replay), or `null`. */
  revision(): number | null;
  /** Stops the background refresh and the change listeners. */
  close(): void;
  on(event: 'change', listener: () => void): this;
  on(event: FlagsEventName, listener: (event: FlagsProviderEvent) => void): this;
  once(event: 'change', listener: () => void): this;
  once(event: FlagsEventName, listener: (event: FlagsProviderEvent) => void): this;
  off(event: 'change', listener: () => void): this;
  off(event: FlagsEventName, listener: (event: FlagsProviderEvent) => void): this;
  removeListener(event: 'change', listener: () => void): this;
  removeListener(event: FlagsEventName, listener: (event: FlagsProviderEvent) => void): this;
}

/** Starts feature flags (config URL from `url` or `RAILGUN_CONFIG_URL`). */
export function initFeatureFlags(options?: FeatureFlagsOptions): RailgunFeatureFlags;

// ---------------------------------------------------------------------------------------------
// Rollout health

export interface HealthOptions extends CommonOptions {
  /** Server base URL; reports go to `{url}/analytics/health` (default `RAILGUN_ANALYTICS_URL`). */
  url?: string;
  /** Channel (default `RAILGUN_UPDATE_CHANNEL`, else `stable`). */
  channel?: string;
  /**
   * The updater's install root, where a boot-guard revert counts as a crash (default: the
   * initialized updater's, else `RAILGUN_INSTALL_ROOT`, else `<stateDir>/install`).
   */
  installRoot?: string;
  /** Milliseconds between reports, ≥ 1000 (default 1 hour; ±10 % jitter). */
  reportInterval?: number;
  /**
   * Consent until the user decides; the stored decision, shared with analytics, wins
   * (default: the initialized analytics client's consent, else `unknown`).
   */
  consent?: Consent;
  /** Count uncaught exceptions of the main process as errors (default `true`). */
  captureExceptions?: boolean;
  /** Count renderer and child processes that die as crashes (default `true`; not `clean-exit` or `killed`). */
  captureProcessCrashes?: boolean;
  /** Hold the first quit until everything shut down cleanly (default `true`). */
  shutdownOnQuit?: boolean;
  /** Milliseconds a quit waits for that shutdown, ≥ 1 (default 3000); then it quits anyway. */
  shutdownTimeout?: number;
}

/** The resolved configuration. */
export interface HealthConfig {
  url: string;
  channel: string;
  app: string;
  version: string;
  stateDir: string;
  installRoot: string;
  /** `null`: the core's default (1 hour). */
  reportInterval: number | null;
  shutdownTimeout: number;
}

/** What the start found and counted. */
export interface HealthStartup {
  /** The version whose previous run ended without a clean shutdown (counted as a crash). */
  uncleanShutdown: string | null;
  /** The version the boot guard reverted from (counted as a crash and a boot revert). */
  revertedFrom: string | null;
  /** Whether anything was recorded (consent `granted`). */
  recorded: boolean;
}

/** Where a count came from. */
export interface HealthRecordInfo {
  /**
   * `app`: a `recordError()` / `recordCrash()` call; `main`: an uncaught exception;
   * `renderer`: a renderer gone, or a page's `health.reportError()`; `child`: a child process gone.
   */
  source: 'app' | 'main' | 'renderer' | 'child';
  /** `details.reason` of a process gone (`crashed`, `oom`, …). */
  reason?: string;
  /** `details.type` of a child process gone (`GPU`, `Utility`, …). */
  processType?: string;
  /** `uncaughtException` or `unhandledRejection` (main-process errors). */
  origin?: string;
}

/** How the shutdown a quit waited for ended. */
export interface HealthQuitShutdown {
  ok: boolean;
  /** The `shutdownTimeout` passed first. */
  timedOut: boolean;
  /** The shutdown failed. */
  error?: RailgunErrorData;
}

/** The health monitor's events and their listeners' arguments. */
export interface HealthEvents {
  recorded: [kind: 'error' | 'crash', info: HealthRecordInfo];
  'quit-shutdown': [result: HealthQuitShutdown];
}

/** Rollout health: errors, crashes and sessions of the running version. */
export class RailgunHealth extends EventEmitter {
  /** The resolved configuration. */
  readonly config: HealthConfig;
  /** What the start found and counted. */
  startup(): HealthStartup;
  /** Counts one error (never blocks; nothing without consent). */
  recordError(): void;
  /** Counts one crash the app detected itself (never blocks). */
  recordCrash(): void;
  /** Sets and stores the consent (shared with analytics, which is told too). */
  setConsent(consent: Consent): void;
  /** Commits the counts and sends what the server takes now. */
  flush(): Promise<{ sent: number; pending: number }>;
  /** Clean shutdown: the next start counts no crash. Later calls return the same promise. */
  shutdown(): Promise<void>;

  on<K extends keyof HealthEvents>(event: K, listener: (...args: HealthEvents[K]) => void): this;
  once<K extends keyof HealthEvents>(event: K, listener: (...args: HealthEvents[K]) => void): this;
  off<K extends keyof HealthEvents>(event: K, listener: (...args: HealthEvents[K]) => void): this;
  addListener<K extends keyof HealthEvents>(event: K, listener: (...args: HealthEvents[K]) => void): this;
  removeListener<K extends keyof HealthEvents>(event: K, listener: (...args: HealthEvents[K]) => void): this;
  emit<K extends keyof HealthEvents>(event: K, ...args: HealthEvents[K]): boolean;
}

/**
 * Starts rollout health and wires it into the app: uncaught main-process exceptions count as
 * errors (observed with `uncaughtExceptionMonitor`), renderer and child processes that die as
 * crashes, and the first quit waits (at most `shutdownTimeout`) for a clean shutdown.
 * @throws {RailgunError} `ERR_INVALID_ARGUMENT` when the configuration is incomplete or wrong;
 * `ERR_ALREADY_INITIALIZED` while a monitor runs.
 */
export function initHealth(options?: HealthOptions): RailgunHealth;

// ---------------------------------------------------------------------------------------------
// IPC

/** What the handlers read from Electron's IPC event. */
export interface IpcEventLike {
  sender: WebContentsLike;
  senderFrame?: { url: string } | null;
}

/** The parts of a `webContents` the pushes use. */
export interface WebContentsLike {
  send(channel: string, ...args: any[]): void;
  isDestroyed?(): boolean;
  once?(event: 'destroyed', listener: () => void): unknown;
}

/** The parts of Electron's `ipcMain` that are used. */
export interface IpcMainLike {
  handle(channel: string, listener: (event: any, ...args: any[]) => unknown): void;
  removeHandler(channel: string): void;
  on(channel: string, listener: (event: any, ...args: any[]) => void): unknown;
  removeListener(channel: string, listener: (...args: any[]) => void): unknown;
}

export interface IpcOptions {
  /** Serve these instead of the ones the init functions created. */
  updater?: RailgunAutoUpdater;
  analytics?: RailgunAnalytics;
  featureFlags?: RailgunFeatureFlags;
  health?: RailgunHealth;
  /** Refuse calls whose sender this does not accept (e.g. check `event.senderFrame.url`). */
  validateSender?: (event: IpcEventLike) => boolean;
}

/** A handler's answer over IPC. */
export type IpcAnswer<T = unknown> = { ok: true; value: T } | { ok: false; error: RailgunErrorData };

/**
 * Registers one `ipcMain.handle` channel per call and the event subscription.
 * @returns a function that removes them all.
 */
export function registerIpcHandlers(ipcMain: IpcMainLike, options?: IpcOptions): () => void;

/** Runs one renderer call (validated) and answers with plain data; refuses unknown channels. */
export function handleInvoke(
  channel: string,
  args: unknown[],
  services?: {
    updater?: RailgunAutoUpdater | null;
    analytics?: RailgunAnalytics | null;
    featureFlags?: RailgunFeatureFlags | null;
    health?: RailgunHealth | null;
  },
): Promise<IpcAnswer>;

/** Stops the updater's checks, flushes and stops analytics, shuts health down cleanly. Never rejects. */
export function shutdown(): Promise<void>;

/** Forgets the services initialized so far and removes health's listeners; shuts nothing down (tests). */
export function reset(): void;

/** Uses `addon` instead of the native addon (`null` goes back to it). */
export function setAddon(addon: unknown): void;

export const CHANNELS: Readonly<{
  UPDATER_CHECK: 'railgun:updater:check';
  UPDATER_DOWNLOAD: 'railgun:updater:download';
  UPDATER_INSTALL: 'railgun:updater:install';
  ANALYTICS_TRACK: 'railgun:analytics:track';
  ANALYTICS_SCREEN: 'railgun:analytics:screen';
  ANALYTICS_SET_CONSENT: 'railgun:analytics:set-consent';
  ANALYTICS_GET_CONSENT: 'railgun:analytics:get-consent';
  FLAGS_GET: 'railgun:flags:get';
  FLAGS_GET_ALL: 'railgun:flags:get-all';
  FLAGS_GET_ANNOUNCEMENTS: 'railgun:flags:get-announcements';
  FLAGS_GET_MAINTENANCE: 'railgun:flags:get-maintenance';
  FLAGS_IS_KILL_SWITCH_ACTIVE: 'railgun:flags:is-kill-switch-active';
  HEALTH_REPORT_ERROR: 'railgun:health:error';
}>;

export const EVENT_CHANNELS: Readonly<{
  UPDATER_EVENT: 'railgun:updater:event';
  FLAGS_CHANGED: 'railgun:flags:changed';
  FLAGS_EVENT: 'railgun:flags:event';
  SUBSCRIBE: 'railgun:events:subscribe';
  UNSUBSCRIBE: 'railgun:events:unsubscribe';
}>;

export const UPDATER_EVENTS: readonly UpdaterEventName[];

export const FLAGS_EVENTS: readonly FlagsEventName[];

export const LIMITS: Readonly<{
  EVENT_NAME: RegExp;
  MAX_PROPERTIES: 32;
  PROPERTY_KEY: RegExp;
  MAX_STRING_LEN: 256;
  MAX_SCREEN_LEN: 256;
  FLAG_KEY: RegExp;
}>;

/** The validators the IPC handlers use; each throws `ERR_INVALID_ARGUMENT`. */
export const validate: Readonly<{
  eventName(name: unknown): string;
  properties(props: unknown): EventProperties | undefined;
  screenName(screen: unknown): string;
  consent(consent: unknown): Consent;
  flagKey(key: unknown): string;
}>;
