// Types of electron/preload.js: the `window.electronAPI` bridge.

import type {
  Announcement,
  Consent,
  DeltaFallbackInfo,
  DownloadResult,
  EventProperties,
  FlagsEventName,
  FlagsProviderEvent,
  InstallResult,
  KillSwitchStatus,
  MaintenanceStatus,
  ProgressInfo,
  RailgunErrorData,
  UpdateInfo,
  UpdaterEventName,
} from './main';

export type { FlagsEventName, FlagsProviderEvent, UpdaterEventName } from './main';

/** Unsubscribes a listener (calling it twice is harmless). */
export type Unsubscribe = () => void;

/** The arguments `updater.onEvent` listeners get: the name, then its payload. */
export type UpdaterEventArgs =
  | [name: 'checking-for-update', payload: null]
  | [name: 'update-available', payload: UpdateInfo]
  | [name: 'update-not-available', payload: UpdateInfo | { version: string } | null]
  | [name: 'download-progress', payload: ProgressInfo]
  | [name: 'update-downloaded', payload: UpdateInfo]
  | [name: 'update-delta-fallback', payload: DeltaFallbackInfo]
  | [name: 'error', payload: RailgunErrorData];

/** `window.electronAPI.featureFlags`. */
export interface FeatureFlagsApi {
  /** Whether a flag is on (key: 1-128 characters of `[A-Za-z0-9_.:-]`). */
  get(key: string): Promise<boolean>;
  getAll(): Promise<Record<string, boolean>>;
  getAnnouncements(): Promise<Announcement[]>;
  getMaintenance(): Promise<MaintenanceStatus>;
  /** The emergency kill switch: `const { active, message } = await ….isKillSwitchActive()`. */
  isKillSwitchActive(): Promise<KillSwitchStatus>;
  /** Called when the main process reports changed flags. */
  onChange(listener: () => void): Unsubscribe;
  /**
   * Called with each provider event of the main process's flags (`READY`,
   * `CONFIGURATION_CHANGED` with the revision now in force, `STALE`, `ERROR` with the reason).
   */
  onEvent(listener: (event: FlagsProviderEvent) => void): Unsubscribe;
}

/** `window.electronAPI.analytics`. A refusal rejects with `ERR_INVALID_ARGUMENT: …`. */
export interface AnalyticsApi {
  track(name: string, properties?: EventProperties): Promise<null>;
  screen(name: string): Promise<null>;
  setConsent(consent: Consent): Promise<null>;
  getConsent(): Promise<Consent>;
}

/** `window.electronAPI.updater`. */
export interface UpdaterApi {
  check(): Promise<UpdateInfo | null>;
  download(): Promise<DownloadResult>;
  install(): Promise<InstallResult>;
  /** Updater events with electron-updater's names, as plain data. */
  onEvent(listener: (...args: UpdaterEventArgs) => void): Unsubscribe;
}

/** `window.electronAPI.health` (rollout health; `initHealth()` in the main process). */
export interface HealthApi {
  /**
   * Counts one uncaught error of the page for the running version. Takes no argument: health
   * reports carry counts only, so no message or stack leaves the page.
   */
  reportError(): Promise<null>;
}

/** What `exposeRailgunApi` puts on `window.electronAPI`. */
export interface ElectronAPI {
  featureFlags: FeatureFlagsApi;
  analytics: AnalyticsApi;
  updater: UpdaterApi;
  health: HealthApi;
}

/** The parts of Electron's `ipcRenderer` that are used. */
export interface IpcRendererLike {
  invoke(channel: string, ...args: any[]): Promise<any>;
  send(channel: string, ...args: any[]): void;
  on(channel: string, listener: (event: any, ...args: any[]) => void): unknown;
}

/** The part of Electron's `contextBridge` that is used. */
export interface ContextBridgeLike {
  exposeInMainWorld(apiKey: string, api: any): void;
}

/** Builds the API over `ipcRenderer` without exposing it. */
export function createRailgunApi(ipcRenderer: IpcRendererLike): ElectronAPI;

/** Exposes the API as `window[options.key ?? 'electronAPI']`. */
export function exposeRailgunApi(
  contextBridge: ContextBridgeLike,
  ipcRenderer: IpcRendererLike,
  options?: { key?: string },
): ElectronAPI;

export const CHANNELS: typeof import('./main').CHANNELS;
export const EVENT_CHANNELS: typeof import('./main').EVENT_CHANNELS;
export const UPDATER_EVENTS: readonly UpdaterEventName[];
export const FLAGS_EVENTS: readonly FlagsEventName[];

declare global {
  interface Window {
    /** Railgun's bridge (electron/preload.js). */
    electronAPI: ElectronAPI;
  }
}
