// Types of electron/renderer.js: analytics and helpers in the renderer.

import type { Consent, EventCategory, EventProperties } from './main';
import type { ElectronAPI, FeatureFlagsApi, UpdaterApi } from './preload';

export type { AnalyticsEvent, EventCategory, EventProperties, Consent } from './main';
export type { ElectronAPI } from './preload';

/** The seed's event names (`src/analytics/event.rs`, `names`). */
export const Events: Readonly<{
  SESSION_START: 'session_start';
  SESSION_HEARTBEAT: 'session_heartbeat';
  SESSION_END: 'session_end';
  SCREEN_VIEW: 'screen_view';
  MESSAGE_SENT: 'message_sent';
  CONVERSATION_OPENED: 'conversation_opened';
  CONTACT_ADDED: 'contact_added';
  UPDATE_CHECKED: 'update_checked';
  UPDATE_AVAILABLE: 'update_available';
  UPDATE_DOWNLOADED: 'update_downloaded';
  UPDATE_INSTALLED: 'update_installed';
  ERROR: 'error';
  EXPERIMENT_EXPOSURE: 'experiment_exposure';
}>;

/** One of the seed's event names. */
export type EventName = (typeof Events)[keyof typeof Events];

/** The event `useFeatureTracking`'s `trackUsage` records. */
export const FEATURE_USED: 'feature_used';

/** The core's category of an event name (`custom` for names it does not know). */
export function categoryOf(name: string): EventCategory;

/** The stable code of an error from the bridge (`ERR_INVALID_ARGUMENT`, …). */
export function errorCode(err: unknown): string | undefined;

/** The renderer's analytics: every call returns at once; failures go to `onError`. */
export interface RendererAnalytics {
  track(name: EventName | (string & {}), properties?: EventProperties): void;
  screen(name: string): void;
  setConsent(consent: Consent): void;
  getConsent(): Promise<Consent>;
}

export interface RendererAnalyticsOptions {
  /** Receives refused or failed calls (default: `console.warn`). */
  onError?: (err: Error) => void;
}

/** The renderer's analytics over `window.electronAPI.analytics`. */
export function getAnalytics(options?: RendererAnalyticsOptions): RendererAnalytics;

/** `window.electronAPI.featureFlags`. */
export function getFeatureFlags(): FeatureFlagsApi;

/** `window.electronAPI.updater`. */
export function getUpdater(): UpdaterApi;

/** Uses `api` instead of `window.electronAPI` (`null` resets). */
export function setElectronApi(api: ElectronAPI | null): void;
