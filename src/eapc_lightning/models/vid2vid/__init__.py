"""Few-shot vid2vid networks (landmark-to-video stage): building blocks, weight generator, generator, flow, discriminators."""
