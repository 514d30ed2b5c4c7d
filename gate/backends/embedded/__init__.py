"""The embedded model: Gemma 3 270M on llama.cpp, run in a child process of its own."""
