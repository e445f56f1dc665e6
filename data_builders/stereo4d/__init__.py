"""The `stereo4d` dataset: Stereo4D's VR180 clips (or rectified pairs) as training records."""
