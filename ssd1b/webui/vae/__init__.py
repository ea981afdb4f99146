"""The VAE section in the host: decode/encode hooks with their fallbacks (`hooks`), which VAE (`choice`), tile plans
(`tiles`), messages and errors (`errors`), TAESD through the host's module (`taesd`) and Forge's own VAE (`forge`)."""
