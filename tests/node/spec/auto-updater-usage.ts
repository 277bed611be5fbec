// In Electron main process
import { initAutoUpdater } from './auto-updater';

const updater = initAutoUpdater({
  channel: 'stable',
  autoCheck: true,
  checkInterval: 4 * 60 * 60 * 1000, // 4 hours
});

updater.startAutoCheck();

// Manual check
await updater.checkForUpdates();

// Download and install
await updater.downloadUpdate();
await updater.installUpdate();
