// The microphone: opened with the browser's echo cancellation (speakers hear the others through
// their own loudspeakers), noise suppression and gain control; and a level meter for it.
//
// Studio mode, for guests on headphones, turns all three off: the voice as the microphone hears
// it. Echo cancellation goes too: headphones leave no echo to cancel, and the canceller's
// suppressor still dulls a voice whenever the others talk over it.

export function microphoneConstraints({ isStudio = false } = {}) {
  const isProcessed = !isStudio;
  return {
    audio: {
      echoCancellation: isProcessed,
      noiseSuppression: isProcessed,
      autoGainControl: isProcessed,
    },
    video: false,
  };
}

export const MICROPHONE_CONSTRAINTS = microphoneConstraints();

const FLOOR_DB = -60;
const METER_RELEASE = 0.85;

export async function openMicrophone(options = {}) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    const error = new Error(
      'This browser cannot use a microphone here. Open the page over HTTPS or on localhost.',
    );
    error.name = 'InsecureContextError';
    throw error;
  }
  return navigator.mediaDevices.getUserMedia(microphoneConstraints(options));
}

// Shows the level of `stream` in `element` (role="meter", its fill sized by --level).
export class LevelMeter {
  constructor(element) {
    this.element = element;
    this.context = null;
    this.frame = 0;
    this.level = 0;
  }

  start(stream) {
    this.stop();
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (!AudioContextClass) return;
    this.context = new AudioContextClass();
    this.context.resume().catch(() => {});
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 1024;
    this.context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const draw = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const sample of samples) sum += sample * sample;
      const rms = Math.sqrt(sum / samples.length);
      const db = rms > 0 ? 20 * Math.log10(rms) : FLOOR_DB;
      const target = Math.min(1, Math.max(0, (db - FLOOR_DB) / -FLOOR_DB));
      this.level = target > this.level ? target : this.level * METER_RELEASE;
      this.show(this.level);
      this.frame = requestAnimationFrame(draw);
    };
    this.frame = requestAnimationFrame(draw);
  }

  show(level) {
    this.element.style.setProperty('--level', level.toFixed(3));
    this.element.setAttribute('aria-valuenow', String(Math.round(level * 100)));
  }

  stop() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.level = 0;
    this.show(0);
    if (this.context) {
      this.context.close().catch(() => {});
      this.context = null;
    }
  }
}
