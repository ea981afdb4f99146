"""The SSD-1B panel in txt2img and img2img: its gradio layout and own events (`layout`), the events on the host's
fields (`events`), the family line (`family`) and the diffusers-pipeline conversion section (`conversion`). The
Script that builds it and runs at every generation is `ssd1b.webui.script`."""
