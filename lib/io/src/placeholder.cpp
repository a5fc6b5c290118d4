// replaced by the io module sources
