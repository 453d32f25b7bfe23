"""GEARnn plugins for keras-edge: One-Shot Growth (osg), ERA/AugMix (era) and the corruption benchmark."""
