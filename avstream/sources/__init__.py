"""Sources of timestamped media: files now, microphones and cameras through the same protocol."""
