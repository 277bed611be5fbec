// Not a snippet: the specification's React component imports from '@/lib/analytics' (its own
// app's module, mapped by tsconfig.json's `paths`); here that module is the package's React
// hooks and event names.
export { useFeatureTracking, useScreenTracking } from '@railgun/core/electron/react';
export { Events } from '@railgun/core/electron/renderer';
