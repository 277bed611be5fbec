// Not a snippet: what the specification's snippets use without importing it, as the app
// around them would provide it. `getAnalytics` (the React component) and `initAnalytics` (the
// debug-mode line) are the package's own functions; `api` and `content` are the chat app's
// (the component's `sendMessage`), declared with the shape the snippet uses.
import type { initAnalytics as InitAnalytics } from '@railgun/core/electron/main';
import type { getAnalytics as GetAnalytics } from '@railgun/core/electron/renderer';
import type {} from '@railgun/core/electron/preload'; // window.electronAPI

declare global {
  const initAnalytics: typeof InitAnalytics;
  const getAnalytics: typeof GetAnalytics;
  const api: { sendMessage(content: string): Promise<unknown> };
  const content: string;
}
