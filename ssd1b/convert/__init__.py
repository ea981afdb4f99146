"""Conversion into A1111's single-file layout, host-free and streaming: diffusers pipelines (their folders and
component names) and single files numbered with holes."""
