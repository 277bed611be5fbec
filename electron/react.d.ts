// Types of electron/react.js: React hooks (React ≥ 16.8 is a peer dependency).

import type { EventProperties } from './main';

/** Records a `screen_view` on mount and whenever `screen` changes. */
export function useScreenTracking(screen: string): void;

/** `trackUsage(action?, properties?)` records `feature_used {feature, action?, ...properties}`. */
export function useFeatureTracking(feature: string): {
  trackUsage: (action?: string, properties?: EventProperties) => void;
};

/** Whether flag `key` is on; `defaultValue` (default `false`) until known. Re-renders on change. */
export function useFeatureFlag(key: string, defaultValue?: boolean): boolean;
