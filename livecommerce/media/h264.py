"""Reading H.264 Annex B access units without decoding them: the NAL units, and the picture size
a sequence parameter set (SPS, ITU-T H.264 §7.3.2.1.1) declares, which an MP4 sample entry needs."""

from __future__ import annotations

NAL_SPS = 7
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream, start codes removed."""
    units = []
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        begin = start + 3
        end = data.find(b"\x00\x00\x01", begin)
        unit = data[begin:] if end == -1 else data[begin:end]
        if end != -1 and unit.endswith(b"\x00"):
            unit = unit[:-1]  # the leading zero of a four-byte start code
        if unit:
            units.append(unit)
        start = end
    return units


def sequence_parameter_set(data: bytes) -> bytes | None:
    """The first SPS NAL unit of an access unit, if it carries one."""
    return next((unit for unit in nal_units(data) if unit[0] & 0x1F == NAL_SPS), None)


class _Bits:
    """An exp-Golomb bit reader over an RBSP (emulation prevention bytes removed)."""

    def __init__(self, rbsp: bytes) -> None:
        self.data = rbsp
        self.position = 0

    def bit(self) -> int:
        byte = self.data[self.position >> 3]  # IndexError past the end: a truncated SPS
        value = (byte >> (7 - (self.position & 7))) & 1
        self.position += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("malformed exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def _rbsp(unit: bytes) -> bytes:
    return unit.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + bits.se() + 256) % 256
        last = next_scale or last


def picture_size(sps: bytes) -> tuple[int, int]:
    """(width, height) in pixels, after cropping, of an SPS NAL unit; ValueError if malformed."""
    try:
        bits = _Bits(_rbsp(sps[1:]))
        profile = bits.bits(8)
        bits.bits(16)  # constraint flags, level
        bits.ue()  # seq_parameter_set_id
        chroma_format = 1
        if profile in _HIGH_PROFILES:
            chroma_format = bits.ue()
            if chroma_format == 3:
                bits.bit()  # separate_colour_plane_flag
            bits.ue()  # bit_depth_luma_minus8
            bits.ue()  # bit_depth_chroma_minus8
            bits.bit()  # qpprime_y_zero_transform_bypass_flag
            if bits.bit():  # seq_scaling_matrix_present_flag
                for index in range(8 if chroma_format != 3 else 12):
                    if bits.bit():
                        _skip_scaling_list(bits, 16 if index < 6 else 64)
        bits.ue()  # log2_max_frame_num_minus4
        order_type = bits.ue()
        if order_type == 0:
            bits.ue()
        elif order_type == 1:
            bits.bit()
            bits.se()
            bits.se()
            for _ in range(bits.ue()):
                bits.se()
        bits.ue()  # max_num_ref_frames
        bits.bit()  # gaps_in_frame_num_value_allowed_flag
        width_mbs = bits.ue() + 1
        height_map_units = bits.ue() + 1
        frame_mbs_only = bits.bit()
        if not frame_mbs_only:
            bits.bit()  # mb_adaptive_frame_field_flag
        bits.bit()  # direct_8x8_inference_flag
        crop = (0, 0, 0, 0)
        if bits.bit():  # frame_cropping_flag
            crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue())
    except IndexError:
        raise ValueError("truncated sequence parameter set") from None
    # CropUnitX/Y (§7.4.2.1.1): SubWidthC and SubHeightC, which are 2 only where chroma is subsampled
    crop_x = 2 if chroma_format in (1, 2) else 1
    crop_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - crop_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_map_units * 16 - crop_y * (crop[2] + crop[3])
    if width <= 0 or height <= 0:
        raise ValueError("sequence parameter set with an empty picture")
    return width, height
