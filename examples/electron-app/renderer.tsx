// Renderer (React): tracks screens and feature use, gates UI on flags, shows update progress.
import { useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { Events, errorCode, getAnalytics } from '@railgun/core/electron/renderer';
import { useFeatureFlag, useFeatureTracking, useScreenTracking } from '@railgun/core/electron/react';
import type { Announcement, ProgressInfo } from '@railgun/core/electron/main';

const analytics = getAnalytics();

// Rollout health: an uncaught error of the page is counted (a count only; nothing else is sent).
const reportError = () => {
  window.electronAPI.health.reportError().catch(() => {});
};
window.addEventListener('error', reportError);
window.addEventListener('unhandledrejection', reportError);

function UpdateBanner() {
  const [status, setStatus] = useState('');
  useEffect(
    () =>
      window.electronAPI.updater.onEvent((name, payload) => {
        switch (name) {
          case 'update-available':
            setStatus(`Downloading ${payload.version}…`);
            break;
          case 'download-progress': {
            const p: ProgressInfo = payload;
            setStatus(`Downloading… ${p.percent.toFixed(0)} %`);
            break;
          }
          case 'update-downloaded':
            setStatus(`${payload.version} is ready: restart to install`);
            break;
          case 'error':
            setStatus(`Update failed (${payload.code})`);
            break;
          default:
            break;
        }
      }),
    [],
  );
  return status ? <div className="banner">{status}</div> : null;
}

function Announcements() {
  const [items, setItems] = useState<Announcement[]>([]);
  useEffect(() => {
    void window.electronAPI.featureFlags.getAnnouncements().then(setItems);
  }, []);
  return (
    <ul>
      {items.map((a) => (
        <li key={a.id}>
          <strong>{a.title}</strong> {a.message}
        </li>
      ))}
    </ul>
  );
}

function KillSwitchBanner() {
  const [notice, setNotice] = useState<string | null>(null);
  useEffect(() => {
    const load = async () => {
      const { active, message } = await window.electronAPI.featureFlags.isKillSwitchActive();
      setNotice(active ? (message ?? 'Some features are turned off for now.') : null);
    };
    void load();
    return window.electronAPI.featureFlags.onChange(() => void load());
  }, []);
  return notice ? <div className="banner critical">{notice}</div> : null;
}

/** Says so while the flags come from the last good copy (the live source is lost). */
function StaleNotice() {
  const [stale, setStale] = useState(false);
  useEffect(
    () =>
      window.electronAPI.featureFlags.onEvent((e) => {
        if (e.type === 'STALE') setStale(true);
        else if (e.type === 'READY' || e.type === 'CONFIGURATION_CHANGED') setStale(false);
      }),
    [],
  );
  return stale ? <div className="banner info">Offline: showing the last known settings.</div> : null;
}

function Composer() {
  useScreenTracking('conversation');
  const newComposer = useFeatureFlag('new_composer');
  const { trackUsage } = useFeatureTracking('composer');
  const send = () => {
    analytics.track(Events.MESSAGE_SENT, { composer: newComposer ? 'new' : 'classic' });
    trackUsage('send');
  };
  return (
    <div>
      <textarea placeholder={newComposer ? 'New composer' : 'Message'} />
      <button type="button" onClick={send}>
        Send
      </button>
    </div>
  );
}

function App() {
  const [consent, setConsent] = useState<'granted' | 'denied' | 'unknown'>('unknown');
  useEffect(() => {
    void window.electronAPI.analytics.getConsent().then(setConsent);
  }, []);
  const choose = (c: 'granted' | 'denied') => {
    analytics.setConsent(c);
    setConsent(c);
  };
  const check = () => {
    window.electronAPI.updater.check().catch((err: unknown) => {
      console.warn('check failed', errorCode(err));
    });
  };
  return (
    <main>
      <KillSwitchBanner />
      <StaleNotice />
      <UpdateBanner />
      <Announcements />
      {consent === 'unknown' && (
        <p>
          Share anonymous usage statistics?{' '}
          <button type="button" onClick={() => choose('granted')}>
            Yes
          </button>
          <button type="button" onClick={() => choose('denied')}>
            No
          </button>
        </p>
      )}
      <Composer />
      <button type="button" onClick={check}>
        Check for updates
      </button>
    </main>
  );
}

const root = document.getElementById('root');
if (root) createRoot(root).render(<App />);
