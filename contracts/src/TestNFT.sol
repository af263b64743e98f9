// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title TestNFT: a minimal ERC-721 (EIP-721) for chainwatch's devnet and tests.
/// @notice Anyone may mint any unused token id. There is no safeTransferFrom: chainwatch only
/// needs the Transfer (three indexed arguments), Approval and ApprovalForAll logs.
contract TestNFT {
    string public constant name = "Test NFT";
    string public constant symbol = "TNFT";

    mapping(uint256 => address) private _owners;
    mapping(address => uint256) public balanceOf;
    mapping(uint256 => address) public getApproved;
    mapping(address => mapping(address => bool)) public isApprovedForAll;

    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);

    function ownerOf(uint256 tokenId) public view returns (address owner) {
        owner = _owners[tokenId];
        require(owner != address(0), "TestNFT: no such token");
    }

    /// @notice Creates token `tokenId` for `to`; logs a Transfer from the zero address.
    function mint(address to, uint256 tokenId) external {
        require(to != address(0), "TestNFT: mint to zero");
        require(_owners[tokenId] == address(0), "TestNFT: token exists");
        _owners[tokenId] = to;
        balanceOf[to] += 1;
        emit Transfer(address(0), to, tokenId);
    }

    function transferFrom(address from, address to, uint256 tokenId) external {
        address owner = ownerOf(tokenId);
        require(owner == from, "TestNFT: wrong from");
        require(to != address(0), "TestNFT: transfer to zero");
        require(
            msg.sender == owner || getApproved[tokenId] == msg.sender
                || isApprovedForAll[owner][msg.sender],
            "TestNFT: not allowed"
        );
        delete getApproved[tokenId];
        balanceOf[from] -= 1;
        balanceOf[to] += 1;
        _owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }

    function approve(address approved, uint256 tokenId) external {
        address owner = ownerOf(tokenId);
        require(
            msg.sender == owner || isApprovedForAll[owner][msg.sender], "TestNFT: not allowed"
        );
        getApproved[tokenId] = approved;
        emit Approval(owner, approved, tokenId);
    }

    function setApprovalForAll(address operator, bool approved) external {
        isApprovedForAll[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 // ERC-165
            || interfaceId == 0x80ac58cd; // ERC-721
    }
}
