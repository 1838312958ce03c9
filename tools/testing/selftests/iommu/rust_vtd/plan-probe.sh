# SPDX-License-Identifier: GPL-2.0
# The accelerator probe: reaching this line is the test.
echo "ok 1 guest_reached_userspace"
