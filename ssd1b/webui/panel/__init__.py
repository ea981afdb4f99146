"""The SSD-1B panel in txt2img and img2img: its gradio layout and events (`layout`) and the diffusers-pipeline
conversion section (`conversion`)."""
