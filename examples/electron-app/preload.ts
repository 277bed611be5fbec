// Preload (sandboxed, context-isolated): exposes window.electronAPI and nothing else.
import { contextBridge, ipcRenderer } from 'electron';
import { exposeRailgunApi } from '@railgun/core/electron/preload';

exposeRailgunApi(contextBridge, ipcRenderer);
