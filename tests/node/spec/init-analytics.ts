initAnalytics({ debug: true, sampleRate: 1.0 });
