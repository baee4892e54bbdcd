"""LoRA adapters: the request type, PEFT adapter files, and the manager that keeps
adapters loaded and places them in the slots the LoRA layers (``fw.layers.lora``) read.

``fw.lora.request`` is torch-free, so ``fw.LoRARequest`` is cheap to import.
"""
