"""nnU-Net's `nnUNet_extTrainer` directory: thin modules that expose nnunet_surgery's trainers.

nnU-Net imports every module here as a top-level name, so nothing in this folder may be named
`nnunet_surgery`. Point nnU-Net here with `export nnUNet_extTrainer=$(nnunet-surgery trainers-dir)`.
"""
