"""Rehearsal: a client of Rostra that talks to a server only over HTTP and WebRTC."""
