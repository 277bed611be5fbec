// Not a snippet: the specification's updater usage imports `initAutoUpdater` from
// './auto-updater' (its own app's module); here that module is the package's main-process API.
export { initAutoUpdater } from '@railgun/core/electron/main';
