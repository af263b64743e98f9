// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title WETH9: wrapped ether as deployed on mainnet at
/// 0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2, with its original argument names.
/// @notice Compiled only for its ABI, contracts/abi/WETH9.json.
interface WETH9 {
    event Approval(address indexed src, address indexed guy, uint256 wad);
    event Transfer(address indexed src, address indexed dst, uint256 wad);
    event Deposit(address indexed dst, uint256 wad);
    event Withdrawal(address indexed src, uint256 wad);

    // WETH9 predates receive(): its payable fallback took plain ether; both are listed here.
    fallback() external payable;
    receive() external payable;

    function name() external view returns (string memory);
    function symbol() external view returns (string memory);
    function decimals() external view returns (uint8);
    function balanceOf(address) external view returns (uint256);
    function allowance(address, address) external view returns (uint256);
    function totalSupply() external view returns (uint256);
    function deposit() external payable;
    function withdraw(uint256 wad) external;
    function approve(address guy, uint256 wad) external returns (bool);
    function transfer(address dst, uint256 wad) external returns (bool);
    function transferFrom(address src, address dst, uint256 wad) external returns (bool);
}
