// React component
import { useScreenTracking, useFeatureTracking, Events } from '@/lib/analytics';

function ChatScreen() {
  // Track screen view on mount
  useScreenTracking('chat');
  
  // Track feature usage
  const { trackUsage } = useFeatureTracking('voice_messages');
  
  const sendMessage = async () => {
    await api.sendMessage(content);
    getAnalytics().track(Events.MESSAGE_SENT, { 
      conversation_type: 'direct' 
    });
  };
  
  return <div>...</div>;
}
