// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title EventZoo: one event per hard case of log decoding, each with a function that emits it.
/// @notice Dynamic types (an indexed string is logged as its keccak256 hash), fixed and dynamic
/// arrays, tuples nested in arrays, negative and narrow signed integers, and an anonymous event
/// (no topic0: its first topic is the indexed argument).
contract EventZoo {
    struct Order {
        address maker;
        uint128 amount;
        bytes data;
        uint8[2] flags;
    }

    event Dynamic(string indexed tag, string text, bytes blob);
    event Arrays(uint256[] values, address[3] fixedAddrs, bytes32[] hashes);
    event Nested(uint256 indexed id, Order order, Order[] orders);
    event Signed(int256 a, int8 b, int24 c);
    event Anon(address indexed who, uint256 value) anonymous;

    function emitDynamic(string calldata tag, string calldata text, bytes calldata blob) external {
        emit Dynamic(tag, text, blob);
    }

    function emitArrays(
        uint256[] calldata values,
        address[3] calldata fixedAddrs,
        bytes32[] calldata hashes
    ) external {
        emit Arrays(values, fixedAddrs, hashes);
    }

    function emitNested(uint256 id, Order calldata order, Order[] calldata orders) external {
        emit Nested(id, order, orders);
    }

    function emitSigned(int256 a, int8 b, int24 c) external {
        emit Signed(a, b, c);
    }

    function emitAnon(address who, uint256 value) external {
        emit Anon(who, value);
    }

    /// @notice Emits every event once, with fixed values, in declaration order.
    function fireAll() external {
        emit Dynamic("zoo", "hello, chainwatch", hex"00ff10");
        uint256[] memory values = new uint256[](3);
        values[0] = 1;
        values[1] = 2;
        values[2] = type(uint256).max;
        bytes32[] memory hashes = new bytes32[](1);
        hashes[0] = keccak256("zoo");
        emit Arrays(values, [msg.sender, address(this), address(0)], hashes);
        Order memory order = Order(msg.sender, 42, hex"c0ffee", [uint8(1), 2]);
        Order[] memory orders = new Order[](2);
        orders[0] = order;
        orders[1] = Order(address(this), type(uint128).max, "", [uint8(0), 255]);
        emit Nested(7, order, orders);
        emit Signed(-1, type(int8).min, type(int24).max);
        emit Anon(msg.sender, 1);
    }
}
