"""CRC-16/CCITT-FALSE in gateware: the register's next value after one byte, as flat XORs.

:func:`crc16_step` is derived from the host's reference
:func:`octet.host.uart_protocol.crc16_update` (the one definition of the CRC), so the two cannot
disagree: the update is linear over GF(2), and each output bit is the XOR of the few register
and byte bits that feed it. The UART bridge checks requests (:mod:`.uart_bridge`) and seals
replies (:mod:`.uart_reply`) with it.

Tested by ``tests/test_uart_bridge.py`` (:func:`crc16_step` against ``crc16_update`` for
random register/byte pairs, and every frame the bridge checks and sends).
"""

from amaranth.hdl import Cat

from octet.host.uart_protocol import crc16_update

__all__ = ["crc16_step"]


def _crc16_taps():
    """For each bit of the next CRC register, the (crc bits, byte bits) it XORs.

    CRC update is linear over GF(2), so feeding each single input bit through the reference
    :func:`~octet.host.uart_protocol.crc16_update` gives the whole function.
    """
    taps = [([], []) for _ in range(16)]
    for i in range(16):
        out = crc16_update(1 << i, 0)
        for j in range(16):
            if out >> j & 1:
                taps[j][0].append(i)
    for i in range(8):
        out = crc16_update(0, 1 << i)
        for j in range(16):
            if out >> j & 1:
                taps[j][1].append(i)
    return taps


_TAPS = _crc16_taps()


def crc16_step(crc, byte):
    """The CRC-16/CCITT-FALSE register after ``byte``: one XOR of a few bits per output bit,
    derived from :func:`octet.host.uart_protocol.crc16_update` (no deep expression).

    Parameters
    ----------
    crc : Value
        The 16-bit CRC register.
    byte : Value
        The 8-bit byte fed into it.

    Returns
    -------
    Value
        16 bits, combinational.
    """
    return Cat(*(Cat(*(crc[i] for i in c), *(byte[i] for i in b)).xor()
                 for c, b in _TAPS))
