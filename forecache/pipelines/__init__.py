"""forecache.pipelines."""
