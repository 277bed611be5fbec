// Main process: the updater, analytics, flags and rollout health from @railgun/core, and the IPC
// handlers the preload bridge talks to. Configuration comes from RAILGUN_UPDATE_URL,
// RAILGUN_UPDATE_CHANNEL, RAILGUN_UPDATE_PUBLIC_KEY, RAILGUN_ANALYTICS_URL and RAILGUN_CONFIG_URL.
import { app, BrowserWindow, dialog, ipcMain } from 'electron';
import * as path from 'path';
import {
  initAnalytics,
  initAutoUpdater,
  initFeatureFlags,
  initHealth,
  registerIpcHandlers,
  type FlagsProviderEvent,
  type HealthQuitShutdown,
  type ProgressInfo,
  type UpdateInfo,
} from '@railgun/core/electron/main';

let mainWindow: BrowserWindow | null = null;

function createWindow(): BrowserWindow {
  const win = new BrowserWindow({
    width: 960,
    height: 640,
    webPreferences: {
      preload: path.join(__dirname, 'preload.js'),
      contextIsolation: true,
      nodeIntegration: false,
      sandbox: true,
    },
  });
  void win.loadFile(path.join(__dirname, 'index.html'));
  return win;
}

app.whenReady().then(() => {
  const analytics = initAnalytics({ debug: !app.isPackaged, sampleRate: 1, consent: 'unknown' });
  const flags = initFeatureFlags({ refreshInterval: 5 * 60 * 1000 });
  // Pushed by the server's config stream (polling when it is unavailable).
  flags.on('CONFIGURATION_CHANGED', (e: FlagsProviderEvent) => {
    console.info(`remote config revision ${e.revision ?? '?'} in force`);
  });
  flags.on('ERROR', (e: FlagsProviderEvent) => console.warn(`remote config refused: ${e.reason}`));

  // Rollout health (after analytics: it shares its consent). Counts uncaught errors and
  // crashed renderer/child processes; holds the quit until everything shut down cleanly.
  const health = initHealth({ shutdownTimeout: 3000 });
  const { uncleanShutdown } = health.startup();
  if (uncleanShutdown) console.warn(`the last run of ${uncleanShutdown} did not end cleanly`);
  health.on('quit-shutdown', (r: HealthQuitShutdown) => {
    if (!r.ok) console.warn(`shutdown ${r.timedOut ? 'timed out' : `failed (${r.error?.code})`}; quitting anyway`);
  });

  const updater = initAutoUpdater({ channel: 'stable', autoCheck: true, checkInterval: 4 * 60 * 60 * 1000 });
  updater.on('checking-for-update', () => analytics.track('update_checked'));
  updater.on('update-available', (info: UpdateInfo) => {
    analytics.track('update_available', { version: info.version });
  });
  updater.on('download-progress', (p: ProgressInfo) => {
    mainWindow?.setProgressBar(p.percent / 100);
  });
  updater.on('update-downloaded', async (info: UpdateInfo) => {
    mainWindow?.setProgressBar(-1);
    analytics.track('update_downloaded', { version: info.version });
    const { response } = await dialog.showMessageBox({
      type: 'info',
      buttons: ['Restart now', 'Later'],
      message: `Rail Gun ${info.version} is ready to install.`,
    });
    if (response === 0) await updater.quitAndInstall();
  });
  updater.on('error', (err) => {
    console.error(`update failed (${err.code}): ${err.message}`);
  });

  // Only our own page may call in.
  registerIpcHandlers(ipcMain, {
    validateSender: (event) => (event.senderFrame?.url ?? '').startsWith('file://'),
  });

  mainWindow = createWindow();
  mainWindow.webContents.once('did-finish-load', () => updater.markBootSuccessful());
  const killSwitch = flags.isKillSwitchActive();
  if (killSwitch.active) console.warn(`emergency kill switch is on: ${killSwitch.message ?? '(no message)'}`);
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});
