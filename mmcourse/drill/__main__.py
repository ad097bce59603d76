"""`python -m mmcourse.drill [options]`: the same drill as `mmcourse quiz`."""

import sys

from mmcourse.drill.drill import main

sys.exit(main())
