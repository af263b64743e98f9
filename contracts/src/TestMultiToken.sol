// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

interface IERC1155Receiver {
    function onERC1155Received(address, address, uint256, uint256, bytes calldata)
        external
        returns (bytes4);

    function onERC1155BatchReceived(
        address,
        address,
        uint256[] calldata,
        uint256[] calldata,
        bytes calldata
    ) external returns (bytes4);
}

/// @title TestMultiToken: a minimal ERC-1155 (EIP-1155) for chainwatch's devnet and tests.
/// @notice Anyone may mint. Transfers to contracts ask the receiver hook, as EIP-1155 requires;
/// transfers to accounts without code (all the devnet traffic) skip it.
contract TestMultiToken {
    mapping(uint256 => mapping(address => uint256)) private _balances;
    mapping(address => mapping(address => bool)) public isApprovedForAll;

    event TransferSingle(
        address indexed operator, address indexed from, address indexed to, uint256 id, uint256 value
    );
    event TransferBatch(
        address indexed operator,
        address indexed from,
        address indexed to,
        uint256[] ids,
        uint256[] values
    );
    event ApprovalForAll(address indexed account, address indexed operator, bool approved);
    event URI(string value, uint256 indexed id);

    function balanceOf(address account, uint256 id) external view returns (uint256) {
        return _balances[id][account];
    }

    function balanceOfBatch(address[] calldata accounts, uint256[] calldata ids)
        external
        view
        returns (uint256[] memory balances)
    {
        require(accounts.length == ids.length, "TestMultiToken: length mismatch");
        balances = new uint256[](accounts.length);
        for (uint256 i = 0; i < accounts.length; i++) {
            balances[i] = _balances[ids[i]][accounts[i]];
        }
    }

    function uri(uint256) external pure returns (string memory) {
        return "https://example.invalid/{id}.json";
    }

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 // ERC-165
            || interfaceId == 0xd9b67a26; // ERC-1155
    }

    function setApprovalForAll(address operator, bool approved) external {
        isApprovedForAll[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    /// @notice Creates `value` of token `id` for `to`; logs a TransferSingle from the zero address.
    function mint(address to, uint256 id, uint256 value) external {
        require(to != address(0), "TestMultiToken: mint to zero");
        _balances[id][to] += value;
        emit TransferSingle(msg.sender, address(0), to, id, value);
    }

    /// @notice Creates tokens for `to`; logs a TransferBatch from the zero address.
    function mintBatch(address to, uint256[] calldata ids, uint256[] calldata values) external {
        require(to != address(0), "TestMultiToken: mint to zero");
        require(ids.length == values.length, "TestMultiToken: length mismatch");
        for (uint256 i = 0; i < ids.length; i++) {
            _balances[ids[i]][to] += values[i];
        }
        emit TransferBatch(msg.sender, address(0), to, ids, values);
    }

    function safeTransferFrom(
        address from,
        address to,
        uint256 id,
        uint256 value,
        bytes calldata data
    ) external {
        _checkTransfer(from, to);
        _move(from, to, id, value);
        emit TransferSingle(msg.sender, from, to, id, value);
        if (to.code.length > 0) {
            bytes4 answer =
                IERC1155Receiver(to).onERC1155Received(msg.sender, from, id, value, data);
            require(
                answer == IERC1155Receiver.onERC1155Received.selector, "TestMultiToken: rejected"
            );
        }
    }

    function safeBatchTransferFrom(
        address from,
        address to,
        uint256[] calldata ids,
        uint256[] calldata values,
        bytes calldata data
    ) external {
        _checkTransfer(from, to);
        require(ids.length == values.length, "TestMultiToken: length mismatch");
        for (uint256 i = 0; i < ids.length; i++) {
            _move(from, to, ids[i], values[i]);
        }
        emit TransferBatch(msg.sender, from, to, ids, values);
        if (to.code.length > 0) {
            bytes4 answer = IERC1155Receiver(to).onERC1155BatchReceived(
                msg.sender, from, ids, values, data
            );
            require(
                answer == IERC1155Receiver.onERC1155BatchReceived.selector,
                "TestMultiToken: rejected"
            );
        }
    }

    function _checkTransfer(address from, address to) private view {
        require(to != address(0), "TestMultiToken: transfer to zero");
        require(
            msg.sender == from || isApprovedForAll[from][msg.sender], "TestMultiToken: not allowed"
        );
    }

    function _move(address from, address to, uint256 id, uint256 value) private {
        uint256 balance = _balances[id][from];
        require(balance >= value, "TestMultiToken: balance");
        unchecked {
            _balances[id][from] = balance - value;
        }
        _balances[id][to] += value;
    }
}
