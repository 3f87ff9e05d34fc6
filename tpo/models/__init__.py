"""The models: the video-LM, the text models (writer, judge), model references, tiny and demo models."""
