"""The sequence-model lab: measured demonstrations of what recurrent models remember
(agreement across distance, gradient norms through time), a checkable encoder-decoder, sentence
scoring, and the course page that maps each idea to an output of the run."""
