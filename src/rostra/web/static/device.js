// This browser's device id: a random id kept in localStorage, sent on join (listener), on a raised
// hand and on WHIP (speaker), so a host's block refuses this browser for the rest of the space.
// Without accounts it is only as stable as the storage: a new profile or cleared storage is a new
// device (docs/stage.md, "Blocks").

const DEVICE_KEY = 'rostra.device';
export const DEVICE_HEADER = 'Rostra-Device';
let memoryId = ''; // storage blocked (private mode, sandboxed frame): one id for this page's life

function newId() {
  const bytes = new Uint8Array(24);
  crypto.getRandomValues(bytes);
  // base64url, 32 characters: what the server accepts (16 to 64 of A-Z a-z 0-9 - _)
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
}

export function deviceId() {
  try {
    let id = localStorage.getItem(DEVICE_KEY) || '';
    if (!/^[A-Za-z0-9_-]{16,64}$/.test(id)) {
      id = newId();
      localStorage.setItem(DEVICE_KEY, id);
    }
    return id;
  } catch {
    memoryId = memoryId || newId();
    return memoryId;
  }
}
