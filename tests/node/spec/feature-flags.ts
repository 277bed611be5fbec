// Check feature flag
const isEnabled = await window.electronAPI.featureFlags.get('voice_messages');

// Get all flags
const flags = await window.electronAPI.featureFlags.getAll();

// Check for announcements
const announcements = await window.electronAPI.featureFlags.getAnnouncements();

// Check maintenance mode
const maintenance = await window.electronAPI.featureFlags.getMaintenance();

// Emergency kill switch
const { active, message } = await window.electronAPI.featureFlags.isKillSwitchActive();
