import os
import signal

import pytest

from explorer.signals import sigterm_as_interrupt


def test_sigterm_raises_keyboard_interrupt_inside_the_block_and_the_old_handler_returns_after():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
