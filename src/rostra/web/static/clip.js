// The clip page: its share link's Copy button (the player is the browser's own).
import { wireCopyButton } from './clipboard.js';

const field = document.getElementById('share-link');
const button = document.getElementById('copy-share');
if (field && button) {
  field.addEventListener('focus', () => field.select());
  wireCopyButton(button, field);
}
