"""The one seam to GitHub: the App client, installation tokens, and the build's small sender."""
